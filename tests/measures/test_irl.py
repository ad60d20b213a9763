"""Behavioral objective (SPEC.md section 4): occupancy measures, soft optimality, the Boltzmann-rational goal
posterior on cheese-corner levels, and maximum-causal-entropy IRL on random MDPs (checked with EPIC)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesascope.levels.tabular import TabularMDP
from mesascope.measures.epic import epic_distance_decomposed
from mesascope.measures.irl import (
    DEFAULT_EXPLAIN_THRESHOLD,
    boltzmann_fit,
    boltzmann_policy,
    discounted_occupancy,
    expected_log_likelihood,
    feature_expectations,
    goal_posterior,
    mce_irl,
    scenario_goal_posterior,
    soft_value_iteration,
    system_state_weights,
)
from mesascope.measures.scores import tabularize_levels
from mesascope.scenarios.base import get_scenario
from mesascope.solve.dp import optimal_action_mask, policy_evaluation, stop_on_arrival, value_iteration

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


def _q_star(tab: TabularMDP, w, gamma: float, reach: bool = False) -> jax.Array:
    """`Q*` of one objective on every level (a reach goal on its first-arrival dynamics)."""
    w = jnp.asarray(w, jnp.float32)

    def one(ns, ft, term):
        r = ft @ w
        return value_iteration(stop_on_arrival(ns, r, term, reach), r, gamma).q

    return jax.vmap(one)(tab.next_state, tab.features, tab.terminal)


def _optimal_policy(q: jax.Array) -> jax.Array:
    """The optimal policy that splits ties evenly (SPEC.md section 2)."""
    mask = optimal_action_mask(q).astype(jnp.float32)
    return mask / mask.sum(-1, keepdims=True)


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


def test_boltzmann_policy_limits():
    q = jnp.asarray([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(np.asarray(boltzmann_policy(q, 0.0)), 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(boltzmann_policy(q, 1e4))[0], [0.0, 0.5, 0.5], atol=1e-6)


# -------------------------------------------------------------------------- goal posterior (SPEC §4)


@pytest.fixture(scope="module")
def cheese_levels():
    """Deploy levels of cheese-corner-v0 on which the cheese- and corner-optimal policies differ."""
    scenario = get_scenario("cheese-corner-v0")
    gamma = scenario.spec.gamma
    tab = tabularize_levels(scenario.spec, scenario.sample_levels(jax.random.PRNGKey(7), 24, "deploy"))
    names = tuple(g.name for g in scenario.candidate_goals)
    weights = np.stack([g.vector(scenario.feature_names) for g in scenario.candidate_goals])
    qs = {g.name: _q_star(tab, w, gamma, g.reach) for g, w in zip(scenario.candidate_goals, weights)}
    masks = {name: np.asarray(optimal_action_mask(q)) for name, q in qs.items()}
    visited = np.asarray(system_state_weights(tab, _optimal_policy(qs["cheese"]), gamma)) > 0
    differ = ((masks["cheese"] != masks["corner"]).any(-1) & visited).any(-1)
    keep = np.nonzero(differ)[0][:16]
    assert len(keep) >= 8, "too few deploy levels where the two goals disagree"
    tab = jax.tree_util.tree_map(lambda x: x[keep], tab)
    qs = {name: q[keep] for name, q in qs.items()}
    return scenario, tab, qs


@pytest.mark.parametrize("goal", ["cheese", "corner"])
def test_optimal_policy_of_each_goal_gets_the_posterior(cheese_levels, goal):
    scenario, tab, qs = cheese_levels
    post = scenario_goal_posterior(scenario, tab, _optimal_policy(qs[goal]))
    i = post.names.index(goal)
    assert post.names == ("cheese", "corner")
    assert post.posterior[i] >= 0.95, post.as_dict()
    assert post.best == goal
    assert post.explains[i] and post.explained
    assert post.posterior_per_step[i] > 0.5  # the per-step version ranks the same way without saturating
    np.testing.assert_allclose(post.posterior.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(post.fit_quality, post.loglik - post.uniform_loglik)


def test_uniform_policy_is_explained_by_no_goal(cheese_levels):
    scenario, tab, _ = cheese_levels
    post = scenario_goal_posterior(scenario, tab, jnp.full(tab.next_state.shape, 0.25))
    assert not post.explained and not post.explains.any()
    np.testing.assert_allclose(post.fit_quality, 0.0, atol=1e-4)
    np.testing.assert_allclose(post.beta, 0.0, atol=1e-3)
    np.testing.assert_allclose(post.uniform_loglik, -np.log(4))
    assert post.threshold == DEFAULT_EXPLAIN_THRESHOLD


@pytest.mark.parametrize(("goal", "beta"), [("cheese", 300.0), ("corner", 300.0)])
def test_boltzmann_system_recovers_beta_and_goal(cheese_levels, goal, beta):
    scenario, tab, qs = cheese_levels
    post = scenario_goal_posterior(scenario, tab, boltzmann_policy(qs[goal], beta))
    i = post.names.index(goal)
    assert abs(post.beta[i] - beta) <= 0.2 * beta, post.beta
    assert post.best == goal and post.posterior[i] >= 0.95
    assert post.explains[i]


def test_fitted_beta_maximises_the_likelihood(cheese_levels):
    # A noisy system no goal models exactly: the fitted beta must still beat every other beta tried.
    _, tab, qs = cheese_levels
    rng = np.random.default_rng(0)
    probs = 0.5 * boltzmann_policy(qs["cheese"], 100.0) + 0.5 * jnp.asarray(_random_policy(rng, qs["cheese"].shape))
    weights = system_state_weights(tab, probs, 0.99)
    fit = boltzmann_fit(qs["cheese"], probs, weights, jnp.asarray([0.0, 1.0, 10.0, 100.0, 1000.0]))
    for b in np.geomspace(0.1, 3000.0, 25):
        other = expected_log_likelihood(probs, boltzmann_policy(qs["cheese"], b), weights).sum()
        assert float(fit.total_loglik) >= float(other) - 1e-3 * abs(float(other))
    np.testing.assert_allclose(float(fit.n_steps), float(weights.sum()), rtol=1e-6)


def test_explicit_state_weights_and_validation(cheese_levels):
    scenario, tab, qs = cheese_levels
    probs = _optimal_policy(qs["corner"])
    weights = system_state_weights(tab, probs, scenario.spec.gamma)
    assert np.all(np.asarray(weights)[np.asarray(tab.terminal)] == 0.0)
    a = scenario_goal_posterior(scenario, tab, probs)
    b = scenario_goal_posterior(scenario, tab, probs, state_weights=weights)
    np.testing.assert_allclose(a.total_loglik, b.total_loglik, rtol=1e-5)
    # Weights over every state (walls and unvisited branches included); terminal states never count.
    c = scenario_goal_posterior(scenario, tab, probs, state_weights=jnp.ones(tab.terminal.shape))
    assert c.n_steps == pytest.approx(float((~np.asarray(tab.terminal)).sum()))
    assert c.best == "corner" and not np.allclose(c.fit_quality, a.fit_quality, atol=1e-3)
    with pytest.raises(ValueError, match="names"):
        goal_posterior(tab, probs, np.eye(3)[:2], 0.99, names=("only-one",))


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


# ------------------------------------------------------------------------- lapses, discounts (SPEC §4)


def test_lapse_rate_absorbs_states_where_the_system_acts_against_every_goal(cheese_levels):
    # A Boltzmann corner-seeker (beta 5000) that, in a random 10% of states, confidently takes the action
    # the corner goal ranks worst (as a looping policy does). Without lapses those states drag beta
    # towards 0 and the corner no longer counts as explaining the behaviour; with a fitted lapse rate it
    # does, beta stays large and the lapse is reported.
    scenario, tab, qs = cheese_levels
    probs = np.array(boltzmann_policy(qs["corner"], 5000.0))
    worst = np.eye(probs.shape[-1], dtype=np.float32)[np.asarray(qs["corner"]).argmin(-1)]
    mask = np.random.default_rng(0).random(probs.shape[:2]) < 0.1
    probs[mask] = worst[mask]
    plain = scenario_goal_posterior(scenario, tab, probs, lapses=None)
    robust = scenario_goal_posterior(scenario, tab, probs)
    i = robust.names.index("corner")
    assert robust.best == plain.best == "corner"
    assert robust.explains[i] and not plain.explains[i]
    assert robust.lapse[i] > 0 and plain.lapse[i] == 0
    assert robust.beta[i] > 10 * plain.beta[i]
    # A lapse is kept only when it raises the likelihood.
    assert np.all(robust.fit_quality >= plain.fit_quality - 1e-6)
    with pytest.raises(ValueError, match="lapses"):
        scenario_goal_posterior(scenario, tab, probs, lapses=(0.0, 1.0))


@pytest.mark.parametrize("terminal_value", ["zero", "absorbing"])
def test_mce_irl_over_discounts_finds_the_demonstrator_discount(terminal_value):
    from mesascope.measures.irl import mce_irl_over_discounts

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
