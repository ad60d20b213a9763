"""Maximum-causal-entropy IRL (SPEC.md section 4): occupancy measures, soft optimality, and MCE IRL on random
MDPs (checked with EPIC), including the discount fitted by likelihood."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesascope.levels.tabular import TabularMDP
from mesascope.measures.epic import epic_distance_decomposed
from mesascope.measures.goal_posterior import expected_log_likelihood, system_state_weights
from mesascope.measures.mce_irl import (
    feature_expectations,
    mce_irl,
    mce_irl_over_discounts,
    soft_value_iteration,
)
from mesascope.solve.dp import discounted_occupancy, policy_evaluation, value_iteration

# --------------------------------------------------------------------------------------------- helpers


def _random_mdps(seed: int, *, levels: int = 3, s: int = 10, a: int = 3, k: int = 4, n_terminal: int = 0):
    """Random deterministic MDPs; the last `n_terminal` states are absorbing with zero features."""
    rng = np.random.default_rng(seed)
    live = s - n_terminal
    ns = rng.integers(0, s, size=(levels, s, a)).astype(np.int32)
    ft = rng.normal(size=(levels, s, a, k)).astype(np.float32)
    term = np.zeros((levels, s), bool)
    if n_terminal:
        term[:, live:] = True
        ns[:, live:, :] = np.arange(live, s)[None, :, None]
        ft[:, live:] = 0.0
    start = rng.integers(0, live, size=(levels,)).astype(np.int32)
    tab = TabularMDP(jnp.asarray(ns), jnp.asarray(ft), jnp.asarray(start), jnp.asarray(term))
    return tab, rng


def _random_policy(rng, shape) -> np.ndarray:
    logits = rng.normal(size=shape) * 2.0
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def _soft_policies(tab: TabularMDP, w, gamma: float) -> jax.Array:
    w = jnp.asarray(w, jnp.float32)
    solve = jax.vmap(lambda ns, ft, t: soft_value_iteration(ns, ft @ w, gamma, terminal=t).policy)
    return solve(tab.next_state, tab.features, tab.terminal)


# ------------------------------------------------------------------------------------------- occupancy


def test_occupancy_sums_to_horizon_and_matches_monte_carlo():
    gamma = 0.9
    tab, rng = _random_mdps(0, levels=1, s=5, a=3, n_terminal=1)
    ns, start = np.asarray(tab.next_state[0]), int(tab.start[0])
    policy = _random_policy(rng, (5, 3))
    mu = np.asarray(discounted_occupancy(tab.next_state[0], jnp.asarray(policy), tab.start[0], gamma))
    assert mu.shape == (5, 3)
    np.testing.assert_allclose(mu.sum(), 1.0 / (1.0 - gamma), rtol=1e-4)

    # Monte Carlo: discounted visit counts of (s, a) over many rollouts (gamma^150 < 1e-6: truncation is negligible).
    n, horizon = 20_000, 150
    counts = np.zeros((n, 5, 3))
    state = np.full(n, start)
    cum = policy.cumsum(-1)
    for t in range(horizon):
        u = rng.random(n)[:, None]
        action = np.minimum((u > cum[state]).sum(-1), 2)
        np.add.at(counts, (np.arange(n), state, action), gamma**t)
        state = ns[state, action]
    estimate, stderr = counts.mean(0), counts.std(0) / np.sqrt(n)
    assert np.all(np.abs(estimate - mu) <= 5 * stderr + 1e-3), np.abs(estimate - mu).max()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gamma=st.floats(0.0, 0.95))
def test_occupancy_equals_linear_solve(seed, gamma):
    tab, rng = _random_mdps(seed % 2**31, levels=1, s=6, a=3, n_terminal=1)
    policy = _random_policy(rng, (6, 3))
    ns = np.asarray(tab.next_state[0])
    p = np.zeros((6, 6))
    np.add.at(p, (np.repeat(np.arange(6), 3), ns.ravel()), policy.ravel())
    d = np.linalg.solve(np.eye(6) - gamma * p.T, np.eye(6)[int(tab.start[0])])
    mu = discounted_occupancy(tab.next_state[0], jnp.asarray(policy), tab.start[0], gamma)
    np.testing.assert_allclose(np.asarray(mu), d[:, None] * policy, atol=2e-4 / (1 - gamma))


def test_feature_expectations_give_policy_values():
    # <w, F_pi> = V_{w.phi}^pi(s0): the occupancy-based expectation agrees with policy evaluation in solve.dp.
    gamma = 0.95
    tab, rng = _random_mdps(1, levels=1, s=8, a=4, k=3)
    policy = jnp.asarray(_random_policy(rng, (8, 4)))
    w = jnp.asarray(rng.normal(size=3), jnp.float32)
    mu = discounted_occupancy(tab.next_state[0], policy, tab.start[0], gamma)
    f = feature_expectations(tab.features[0], mu)
    v = policy_evaluation(tab.next_state[0], tab.features[0] @ w, policy, gamma)
    np.testing.assert_allclose(float(f @ w), float(v[tab.start[0]]), rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------------------------ soft optimality


def test_soft_value_iteration_solves_its_bellman_equation():
    gamma, beta = 0.9, 2.0
    tab, rng = _random_mdps(2, levels=1, s=8, a=3, k=2, n_terminal=2)
    r = tab.features[0] @ jnp.asarray([1.0, -0.5])
    sol = soft_value_iteration(tab.next_state[0], r, gamma, beta, terminal=tab.terminal[0])
    live = ~np.asarray(tab.terminal[0])
    q = np.asarray(r) + gamma * np.asarray(sol.v)[np.asarray(tab.next_state[0])]
    lse = np.log(np.exp(beta * q).sum(-1)) / beta
    np.testing.assert_allclose(np.asarray(sol.v)[live], lse[live], atol=1e-4)
    assert np.all(np.asarray(sol.v)[~live] == 0.0)  # no entropy after the episode ends
    np.testing.assert_allclose(np.asarray(sol.policy).sum(-1), 1.0, atol=1e-6)
    # Without the terminal mask, an absorbing state collects log(A) / (beta (1 - gamma)) of entropy.
    plain = soft_value_iteration(tab.next_state[0], r, gamma, beta)
    np.testing.assert_allclose(np.asarray(plain.v)[~live], np.log(3) / (beta * (1 - gamma)), rtol=1e-4)


def test_soft_policy_becomes_greedy_as_beta_grows():
    gamma = 0.9
    tab, _ = _random_mdps(3, levels=1, s=8, a=3, k=2)
    r = tab.features[0] @ jnp.asarray([1.0, 0.3])
    greedy = np.asarray(value_iteration(tab.next_state[0], r, gamma).q).argmax(-1)
    soft = soft_value_iteration(tab.next_state[0], r, gamma, 200.0)
    assert np.array_equal(np.asarray(soft.policy).argmax(-1), greedy)
    assert np.asarray(soft.policy).max(-1).min() > 0.9


# ------------------------------------------------------------------------------------ MCE IRL (SPEC §4)


@pytest.mark.parametrize(("seed", "n_terminal"), [(0, 0), (1, 2), (2, 0)])
def test_mce_irl_recovers_a_soft_optimal_reward(seed, n_terminal):
    gamma = 0.9
    tab, rng = _random_mdps(seed, levels=4, s=12, a=3, k=4, n_terminal=n_terminal)
    w_true = rng.normal(size=4).astype(np.float32)
    probs = _soft_policies(tab, w_true, gamma)
    res = mce_irl(tab, probs, gamma=gamma, l2=1e-4, steps=400, lr=0.05)
    w_fit = np.asarray(res.weights)

    fitted = _soft_policies(tab, w_fit, gamma)
    kl = float(jnp.mean(jnp.sum(probs * (jnp.log(probs) - jnp.log(fitted)), -1)))
    r_true, r_fit = tab.features @ jnp.asarray(w_true), tab.features @ res.weights
    zero = jnp.zeros(r_true.shape[:-1])
    epic = np.asarray(epic_distance_decomposed(r_true, zero, r_fit, zero, gamma=gamma))
    cos = np.dot(w_true - w_true.mean(), w_fit - w_fit.mean()) / (
        np.linalg.norm(w_true - w_true.mean()) * np.linalg.norm(w_fit - w_fit.mean())
    )
    assert epic.max() < 0.02, epic
    assert kl < 1e-3, kl
    assert cos > 0.99, cos
    assert float(res.gap_norm) < 1e-2
    assert float(res.gap_trace[-1]) < float(res.gap_trace[0]) / 100


def test_mce_loglik_is_the_telescoped_objective():
    # Expected log-likelihood of the demo under pi_w equals <w, F_demo> - V_w(s0): the identity the gradient uses.
    gamma = 0.9
    tab, rng = _random_mdps(4, levels=2, s=10, a=3, k=3, n_terminal=1)
    probs = jnp.asarray(_random_policy(rng, (2, 10, 3)))
    res = mce_irl(tab, probs, gamma=gamma, steps=50)
    w = res.weights
    weights = system_state_weights(tab, probs, gamma)
    soft = jax.vmap(lambda ns, ft, t: soft_value_iteration(ns, ft @ w, gamma, terminal=t))(
        tab.next_state, tab.features, tab.terminal
    )
    direct = expected_log_likelihood(probs, soft.policy, weights)  # [L]
    mu = jax.vmap(lambda ns, pi, s0: discounted_occupancy(ns, pi, s0, gamma))(tab.next_state, probs, tab.start)
    f_demo = feature_expectations(tab.features, jnp.where(tab.terminal[..., None], 0.0, mu))
    telescoped = f_demo @ w - soft.v[jnp.arange(2), tab.start]
    np.testing.assert_allclose(np.asarray(direct), np.asarray(telescoped), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(float(res.loglik), float(direct.sum() / weights.sum()), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(res.demo_features), np.asarray(f_demo.mean(0)), rtol=1e-5)


def test_mce_constant_feature_and_frozen_weights_stay_put():
    gamma = 0.9
    tab, rng = _random_mdps(5, levels=3, s=10, a=3, k=3)
    # Append a constant feature: without terminal states it cannot change any policy.
    const = jnp.ones(tab.features.shape[:-1] + (1,))
    tab = tab._replace(features=jnp.concatenate([tab.features, const], -1))
    w_true = np.array([1.0, -1.0, 0.5, 0.0], np.float32)
    probs = _soft_policies(tab, w_true, gamma)
    res = mce_irl(tab, probs, gamma=gamma, l2=1e-3, steps=300, lr=0.05)
    assert abs(float(res.weights[3])) < 1e-2, res.weights
    np.testing.assert_allclose(np.asarray(res.weights[:3]), w_true[:3], atol=0.05)
    frozen = mce_irl(tab, probs, gamma=gamma, steps=50, trainable=[True, False, True, True])
    assert float(frozen.weights[1]) == 0.0
    with pytest.raises(ValueError, match="shape"):
        mce_irl(tab, probs, gamma=gamma, steps=10, init=jnp.zeros(2))


# -------------------------------------------------------------------------------- discounts (SPEC §4)


@pytest.mark.parametrize("terminal_value", ["zero", "absorbing"])
def test_mce_irl_over_discounts_finds_the_demonstrator_discount(terminal_value):
    tab, rng = _random_mdps(5, levels=4, s=10, a=3, k=3, n_terminal=2)
    w_true = jnp.asarray(rng.normal(size=3), jnp.float32)
    gamma_true = 0.7
    soft_terminal = tab.terminal if terminal_value == "zero" else jnp.zeros_like(tab.terminal)
    probs = jax.vmap(lambda ns, ft, t: soft_value_iteration(ns, ft @ w_true, gamma_true, terminal=t).policy)(
        tab.next_state, tab.features, soft_terminal
    )
    fit = mce_irl_over_discounts(
        tab, probs, gammas=(0.3, 0.7, 0.95), eval_gamma=0.9, steps=600, lr=0.1, l2=1e-5, terminal_value=terminal_value
    )
    assert fit.gamma == gamma_true, fit.loglik
    assert fit.loglik.argmax() == 1 and len(fit.gammas) == 3
    np.testing.assert_allclose(np.asarray(fit.result.weights), np.asarray(w_true), atol=0.1)
    with pytest.raises(ValueError, match="gammas"):
        mce_irl_over_discounts(tab, probs, gammas=(), eval_gamma=0.9)
    with pytest.raises(ValueError, match="terminal_value"):
        mce_irl(tab, probs, gamma=0.7, terminal_value="bogus")
