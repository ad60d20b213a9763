"""Value iteration against ground truth: every deterministic stationary policy of tiny hand-drawn
levels evaluated exactly in float64 (the optimum of a finite discounted MDP is attained by one of them),
both through the dense finishing step and through the pure iteration; on a level too large for brute
force, against an independent float64 NumPy value iteration."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import mesascope.solve.dp as dp
from mesascope.solve.dp import optimal_action_mask, value_iteration

# Two free paths around a wall, a "mud" region in the bottom-right, the cheese on the right.
LEVEL_A = ("S..#", ".#.C", "....")
MUD_A = ("....", "....", "..xx")
# Center wall: two equally long paths from S to the cheese (drawn 3x4, like LEVEL_A, to share shapes).
LEVEL_B = ("S..#", ".#.#", "..C#")


@pytest.fixture(scope="module")
def level_a(draw_level, tabular_np, brute_force):
    spec, level, cells = draw_level(LEVEL_A, regions={"mud": MUD_A}, gamma=0.9)
    mdp = tabular_np(spec, level)
    states = brute_force.reachable(mdp.next_state, mdp.start)
    policies = brute_force.policies(mdp.next_state, mdp.features, states)
    return spec, level, cells, mdp, states, policies


def _brute_optimum(brute_force, mdp, reward, gamma, states, policies):
    values = brute_force.values(mdp.next_state, reward, gamma, states, policies)
    v_star = values.max(axis=0)  # one policy is optimal at every state simultaneously
    # ... and that policy is in the enumeration: some row attains the max everywhere.
    assert np.any(np.all(values >= v_star - 1e-9, axis=1))
    return v_star


def _full_v(states, v_local, n_states):
    v = np.full(n_states, np.nan)
    v[states] = v_local
    return v


def test_reachable_set_of_level_a(level_a):
    spec, _, cells, mdp, states, policies = level_a
    free_live = {(r, c) for ch in ".S" for (r, c) in cells[ch]}  # the cheese square is never a live state
    assert len(states) == len(free_live) + 1
    assert states[-1] == spec.n_states - 1  # the terminal state is reachable
    assert len(policies) == 3**7 * 4**2  # distinct outcomes per square, worked out by hand


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("weights", [(1.0, 0.0, 0.0), (1.0, -0.05, 0.0), (0.2, 0.0, 0.1), (0.0, -1.0, 0.0)])
def test_value_iteration_matches_brute_force_on_features(level_a, brute_force, dp_jit, gamma, weights):
    """Features are (cheese, step, mud); weights cover reach-the-goal, step costs, and loitering in mud."""
    spec, _, _, mdp, states, policies = level_a
    reward = mdp.features @ np.asarray(weights)
    v_star = _brute_optimum(brute_force, mdp, reward, gamma, states, policies)
    sol = dp_jit.value_iteration(mdp.next_state, reward.astype(np.float32), gamma)
    scale = max(np.abs(reward).max() / (1 - gamma), 1e-9)
    np.testing.assert_allclose(np.asarray(sol.v)[states], v_star, atol=2e-5 * scale, rtol=0)
    v_full = _full_v(states, v_star, spec.n_states)
    q_star = reward[states] + gamma * v_full[mdp.next_state[states]]
    np.testing.assert_allclose(np.asarray(sol.q)[states], q_star, atol=2e-5 * scale, rtol=0)


def test_hand_values_on_level_a(level_a, dp_jit):
    """Cheese only, gamma 0.9: V*(s) = gamma**(d(s) - 1), d = steps to the cheese."""
    _, _, _, mdp, _, _ = level_a
    sol = dp_jit.value_iteration(mdp.next_state, mdp.features[..., 0].astype(np.float32), 0.9)
    # steps to the cheese at (1, 3): from (1,2) and (2,3) one step; start (0,0) is 4 steps away.
    dist = {(1, 2): 1, (2, 3): 1, (0, 2): 2, (2, 2): 2, (0, 1): 3, (2, 1): 3, (0, 0): 4, (2, 0): 4, (1, 0): 5}
    for (r, c), d in dist.items():
        s = (r * 4 + c)  # n_tracked = 0, max_inventory = 0
        assert float(sol.v[s]) == pytest.approx(0.9 ** (d - 1), abs=1e-6)


def test_value_iteration_matches_brute_force_on_random_features(level_a, brute_force, dp_jit):
    rng = np.random.default_rng(0)
    spec, _, _, mdp, states, policies = level_a
    for _ in range(6):
        w = rng.normal(size=mdp.features.shape[-1]) * rng.choice([0.1, 1.0, 3.0])
        gamma = float(rng.uniform(0.5, 0.99))
        reward = mdp.features @ w
        v_star = _brute_optimum(brute_force, mdp, reward, gamma, states, policies)
        sol = dp_jit.value_iteration(mdp.next_state, reward.astype(np.float32), gamma)
        scale = np.abs(reward).max() / (1 - gamma)
        np.testing.assert_allclose(np.asarray(sol.v)[states], v_star, atol=2e-5 * scale, rtol=0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_value_iteration_matches_brute_force_on_random_rewards(draw_level, tabular_np, brute_force, dp_jit, seed):
    """An arbitrary reward per (state, action), the terminal state included (no feature structure)."""
    spec, level, _ = draw_level(LEVEL_B, gamma=0.9)
    mdp = tabular_np(spec, level)
    states = brute_force.reachable(mdp.next_state, mdp.start)
    rng = np.random.default_rng(seed)
    reward = rng.normal(size=mdp.next_state.shape).astype(np.float32).astype(np.float64)
    policies = brute_force.policies(mdp.next_state, reward[..., None], states)
    assert len(policies) == 4 ** (len(states) - 1) * 4  # every action distinct: no structure to exploit
    gamma = 0.9
    values = brute_force.values(mdp.next_state, reward, gamma, states, policies)
    v_star = values.max(0)
    sol = dp_jit.value_iteration(mdp.next_state, reward.astype(np.float32), gamma)
    scale = np.abs(reward).max() / (1 - gamma)
    np.testing.assert_allclose(np.asarray(sol.v)[states], v_star, atol=2e-5 * scale, rtol=0)

    # The optimal-action mask is exactly the set of actions some optimal policy takes.
    v_full = _full_v(states, v_star, spec.n_states)
    q_star = reward[states] + gamma * v_full[mdp.next_state[states]]
    gaps = q_star.max(1, keepdims=True) - q_star
    assert np.all((gaps < 1e-9) | (gaps > 1e-3 * scale)), "choose a seed without near-ties"
    mask = np.asarray(optimal_action_mask(np.asarray(sol.q)))[states]
    np.testing.assert_array_equal(mask, gaps < 1e-9)


@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_pure_iteration_matches_brute_force(level_a, brute_force, monkeypatch, gamma):
    """With the dense finishing step disabled, the stopping rule alone must still be accurate."""
    monkeypatch.setattr(dp, "DENSE_MAX_STATES", 0)
    spec, _, _, mdp, states, policies = level_a
    reward = mdp.features @ np.array([1.0, -0.1, 0.3])
    v_star = _brute_optimum(brute_force, mdp, reward, gamma, states, policies)
    # A fresh jit wrapper, traced after the monkeypatch.
    sol = jax.jit(lambda ns, r, g: value_iteration(ns, r, g))(mdp.next_state, reward.astype(np.float32), gamma)
    scale = np.abs(reward).max() / (1 - gamma)
    # The stopping rule bounds the error by gamma / (1 - gamma) * tol * scale, plus float32 rounding.
    bound = gamma / (1 - gamma) * dp.DEFAULT_TOL * scale + 1e-5 * scale
    np.testing.assert_allclose(np.asarray(sol.v)[states], v_star, atol=bound, rtol=0)


def _numpy_value_iteration(next_state, reward, gamma, iters):
    v = np.zeros(next_state.shape[0])
    for _ in range(iters):
        v = (reward + gamma * v[next_state]).max(1)
    return v


def test_value_iteration_on_large_level_matches_float64_numpy(keys_chests_level, tabular_np, dp_jit):
    """1729 states: no dense finish, so this checks the iterative path against an independent solver."""
    spec, level, _ = keys_chests_level
    assert spec.n_states > dp.DENSE_MAX_STATES
    mdp = tabular_np(spec, level)
    gamma = spec.gamma
    # features: key, chest, cheese, lava, step
    for w in ([0.0, 1.0, 0.0, 0.0, 0.0], [0.1, 1.0, 0.5, -1.0, -0.02], [0.0, 0.0, 0.0, 1.0, 0.0]):
        reward = mdp.features @ np.asarray(w)
        v_ref = _numpy_value_iteration(mdp.next_state, reward, gamma, iters=800)  # gamma**800 ~ 1e-18
        sol = dp_jit.value_iteration(mdp.next_state, reward.astype(np.float32), gamma)
        scale = np.abs(reward).max() / (1 - gamma)
        np.testing.assert_allclose(np.asarray(sol.v), v_ref, atol=1e-4 * scale, rtol=0)
