"""Policy evaluation three ways: the iterative Bellman operator, the dense linear solve, and Monte Carlo
rollouts of the simulator's own `step` (so the tabular view and the solver are checked together), plus a
float64 NumPy solve as the reference for the dense path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mesascope.solve.dp as dp
from mesascope.levels.grid import reset, step
from mesascope.levels.tabular import decode, encode

LEVEL_A = ("S..#", ".#.C", "....")
MUD_A = ("....", "....", "..xx")


def _random_policy(rng, n_states, n_actions, concentration):
    return rng.dirichlet(np.full(n_actions, concentration), size=n_states).astype(np.float32)


def _numpy_policy_value(next_state, reward, policy, gamma):
    s = next_state.shape[0]
    p = np.zeros((s, s))
    np.add.at(p, (np.repeat(np.arange(s), next_state.shape[1]), next_state.ravel()), policy.astype(np.float64).ravel())
    r_pi = (policy.astype(np.float64) * reward).sum(1)
    return np.linalg.solve(np.eye(s) - gamma * p, r_pi)


@pytest.fixture(scope="module")
def level_a(draw_level, tabular_np):
    spec, level, cells = draw_level(LEVEL_A, regions={"mud": MUD_A}, gamma=0.9)
    return spec, level, cells, tabular_np(spec, level)


@pytest.mark.parametrize("concentration", [0.3, 1.0, 10.0])
def test_dense_matches_float64_solve(level_a, dp_jit, concentration):
    _, _, _, mdp = level_a
    rng = np.random.default_rng(int(concentration * 10))
    for gamma in (0.5, 0.9, 0.99):
        w = rng.normal(size=mdp.features.shape[-1])
        reward = mdp.features @ w
        policy = _random_policy(rng, *mdp.next_state.shape, concentration)
        ref = _numpy_policy_value(mdp.next_state, reward, policy, gamma)
        got = dp_jit.policy_evaluation_dense(mdp.next_state, reward.astype(np.float32), policy, gamma)
        scale = np.abs(reward).max() / (1 - gamma)
        np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5 * scale, rtol=0)


def test_iterative_matches_dense_on_small_level(level_a, dp_jit, monkeypatch):
    """`policy_evaluation` is dense below DENSE_MAX_STATES; force its iterative path to compare."""
    monkeypatch.setattr(dp, "DENSE_MAX_STATES", 0)
    iterative = jax.jit(lambda ns, r, p, g: dp.policy_evaluation(ns, r, p, g))
    _, _, _, mdp = level_a
    rng = np.random.default_rng(7)
    for gamma in (0.5, 0.9, 0.99):
        for concentration in (0.3, 3.0):
            reward = (mdp.features @ rng.normal(size=mdp.features.shape[-1])).astype(np.float32)
            policy = _random_policy(rng, *mdp.next_state.shape, concentration)
            v_it = np.asarray(iterative(mdp.next_state, reward, policy, gamma))
            v_dense = np.asarray(dp_jit.policy_evaluation_dense(mdp.next_state, reward, policy, gamma))
            scale = np.abs(reward).max() / (1 - gamma)
            np.testing.assert_allclose(v_it, v_dense, atol=1e-4 * scale, rtol=0)


def test_iterative_matches_dense_on_large_level(keys_chests_level, tabular_np, dp_jit):
    """1729 states: `policy_evaluation` takes its iterative path on its own."""
    spec, level, _ = keys_chests_level
    assert spec.n_states > dp.DENSE_MAX_STATES
    mdp = tabular_np(spec, level)
    rng = np.random.default_rng(11)
    # features: key, chest, cheese, lava, step
    reward = (mdp.features @ np.array([0.3, 1.0, 2.0, -1.0, -0.05])).astype(np.float32)
    scale = np.abs(reward).max() / (1 - spec.gamma)
    for concentration in (0.5, 5.0):
        policy = _random_policy(rng, *mdp.next_state.shape, concentration)
        # Reference: the Bellman operator iterated in float64 NumPy (0.95**1000 ~ 5e-23).
        r_pi = (policy.astype(np.float64) * reward).sum(1)
        ref = np.zeros(spec.n_states)
        for _ in range(1000):
            ref = r_pi + spec.gamma * (policy * ref[mdp.next_state]).sum(1)
        v_it = np.asarray(dp_jit.policy_evaluation(mdp.next_state, reward, policy, spec.gamma))
        np.testing.assert_allclose(v_it, ref, atol=1e-4 * scale, rtol=0)
        assert np.abs(ref).max() > 0.05 * scale  # not a vacuous comparison of near-zero values
    # The dense solve (once: it is O(S^3)) agrees with the iterative path.
    v_dense = np.asarray(dp_jit.policy_evaluation_dense(mdp.next_state, reward, policy, spec.gamma))
    np.testing.assert_allclose(v_it, v_dense, atol=1e-4 * scale, rtol=0)


def test_uniform_policy_and_deterministic_policy_values(level_a, dp_jit):
    """Hand check: a deterministic shortest-path policy gets gamma**(d-1); the uniform policy rows sum to 1."""
    spec, _, _, mdp = level_a
    uni = np.asarray(dp.uniform_policy(mdp.next_state))
    np.testing.assert_allclose(uni.sum(1), 1.0)
    # right, right, down, right from the start: (0,0)->(0,1)->(0,2)->(1,2)->cheese(1,3)
    policy = np.zeros(mdp.next_state.shape, np.float32)
    policy[:, 2] = 1.0  # down everywhere else
    for (r, c), a in {(0, 0): 1, (0, 1): 1, (0, 2): 2, (1, 2): 1}.items():
        policy[r * spec.width + c] = np.eye(4)[a]
    v = dp_jit.policy_evaluation_dense(mdp.next_state, mdp.features[..., 0].astype(np.float32), policy, 0.9)
    assert float(v[mdp.start]) == pytest.approx(0.9**3, abs=1e-6)
    # Step cost -1 per move: -(1 + g + g^2 + g^3) to the cheese; the terminal state is worth 0 after that.
    v = dp_jit.policy_evaluation_dense(mdp.next_state, -mdp.features[..., 1].astype(np.float32), policy, 0.9)
    assert float(v[mdp.start]) == pytest.approx(-(1 + 0.9 + 0.81 + 0.729), abs=1e-5)
    assert float(v[-1]) == 0.0
    # Below the mud (bottom row, (2,3)) "down" bumps forever: mud every step -> 1 / (1 - gamma).
    v = dp_jit.policy_evaluation_dense(mdp.next_state, mdp.features[..., 2].astype(np.float32), policy, 0.9)
    assert float(v[2 * spec.width + 3]) == pytest.approx(10.0, rel=1e-5)


HORIZON = 120  # 0.9**120 ~ 3e-6
N_ROLLOUTS = 8_000


def _monte_carlo(spec, level, policy, w, gamma, starts, key):
    """Discounted returns `[len(starts), N_ROLLOUTS]` of `policy` (indexed by tabular state), run with
    the simulator's `step` from each decoded start state."""
    cdf = jnp.cumsum(jnp.asarray(policy), axis=1)
    w = jnp.asarray(w, jnp.float32)

    def rollout(state, key):
        def body(carry, u):
            state, ret, disc = carry
            # Inverse-CDF sampling of the action from the policy row of the current tabular state.
            a = jnp.minimum((cdf[encode(spec, state)] < u).sum(), policy.shape[1] - 1)
            state, phi = step(spec, level, state, a)
            return (state, ret + disc * (phi @ w), disc * gamma), None

        uniforms = jax.random.uniform(key, (HORIZON,))
        (_, ret, _), _ = jax.lax.scan(body, (state, 0.0, 1.0), uniforms)
        return ret

    def from_start(s, key):
        state = decode(spec, s)
        return jax.vmap(lambda k: rollout(state, k))(jax.random.split(key, N_ROLLOUTS))

    keys = jax.random.split(key, len(starts))
    return np.asarray(jax.jit(jax.vmap(from_start))(jnp.asarray(starts), keys), np.float64)


def test_monte_carlo_rollouts_agree_with_exact_value(level_a, brute_force, dp_jit):
    """Sampled returns through `step` agree with the exact value within 4 standard errors."""
    spec, level, _, mdp = level_a
    gamma = 0.9
    rng = np.random.default_rng(3)
    policy = _random_policy(rng, *mdp.next_state.shape, 1.0)
    w = np.array([1.0, -0.1, 0.5])  # cheese, step, mud
    reward = mdp.features @ w
    exact = dp_jit.policy_evaluation(mdp.next_state, reward.astype(np.float32), policy, gamma)
    exact = np.asarray(exact, np.float64)
    states = brute_force.reachable(mdp.next_state, mdp.start)
    # The start and a square in the mud (where returns are largest and most variable).
    live = np.array([mdp.start, 2 * spec.width + 3])
    assert set(live) <= set(states)
    returns = _monte_carlo(spec, level, policy, w, gamma, live, jax.random.key(0))
    mean = returns.mean(1)
    se = returns.std(1, ddof=1) / np.sqrt(N_ROLLOUTS)
    tail = gamma**HORIZON * np.abs(w).sum() / (1 - gamma)
    tol = 4 * se + tail + 1e-5
    scale = np.abs(w).sum() / (1 - gamma)
    assert tol.max() < 0.005 * scale, "the Monte Carlo check would be too loose to mean anything"
    np.testing.assert_array_less(np.abs(mean - exact[live]), tol)
    # The check has power: a different policy's exact values are far outside the tolerance somewhere.
    other = _random_policy(rng, *mdp.next_state.shape, 1.0)
    exact_other = np.asarray(dp_jit.policy_evaluation(mdp.next_state, reward.astype(np.float32), other, gamma))
    assert np.any(np.abs(mean - exact_other[live]) > tol)
