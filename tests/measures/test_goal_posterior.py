"""The candidate-goal posterior (SPEC.md section 4): the Boltzmann-rational model, and on cheese-corner levels the
posterior of optimal, Boltzmann, uniform and lapsing systems over the scenario's candidate goals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.tabular import TabularMDP
from mesascope.measures.goal_posterior import (
    DEFAULT_BETAS,
    DEFAULT_EXPLAIN_THRESHOLD,
    DEFAULT_LAPSES,
    boltzmann_fit,
    boltzmann_policy,
    expected_log_likelihood,
    goal_posterior,
    scenario_goal_posterior,
    system_state_weights,
)
from mesascope.measures.scores import tabularize_levels
from mesascope.scenarios.base import get_scenario
from mesascope.solve.dp import optimal_action_mask, stop_on_arrival, value_iteration

# --------------------------------------------------------------------------------------------- helpers


def _random_policy(rng, shape) -> np.ndarray:
    logits = rng.normal(size=shape) * 2.0
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


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



# ----------------------------------------------------------------------------------- Boltzmann-rational model


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


# ------------------------------------------------------------------------- lapses (SPEC §4)


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


def test_posterior_skips_zero_lapses_without_changing_the_fit(cheese_levels):
    # `posteriors_from_q` leaves lapses <= 0 out of the grid it fits (boltzmann_fit masks them anyway): the
    # fit must equal `boltzmann_fit` over the full grid, and a grid of zeros the lapse-free fit.
    scenario, tab, qs = cheese_levels
    probs = np.array(boltzmann_policy(qs["corner"], 50.0))
    probs[np.random.default_rng(1).random(probs.shape[:2]) < 0.1] = np.eye(4, dtype=np.float32)[0]
    weights = system_state_weights(tab, probs, scenario.spec.gamma)
    betas = jnp.asarray(DEFAULT_BETAS, jnp.float32)
    for lapses in (DEFAULT_LAPSES, (0.0,)):
        post = scenario_goal_posterior(scenario, tab, probs, state_weights=weights, lapses=lapses)
        for i, name in enumerate(post.names):
            full = boltzmann_fit(qs[name], jnp.asarray(probs), jnp.where(tab.terminal, 0.0, weights), betas,
                                 jnp.asarray(lapses, jnp.float32) if lapses != (0.0,) else None)
            np.testing.assert_allclose(post.beta[i], full.beta, rtol=1e-5)
            np.testing.assert_allclose(post.lapse[i], full.lapse, rtol=1e-6)
            np.testing.assert_allclose(post.fit_quality[i], full.fit_quality, rtol=1e-4, atol=1e-6)
