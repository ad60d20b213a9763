"""Reach goals (`Objective.reach`): valued at first arrival, checked against a direct computation of the
discounted first-arrival time, on random MDPs and on a cheese-corner deploy level."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.tabular import TabularMDP
from mesascope.measures.goal_posterior import goal_posterior
from mesascope.measures.scores import score_levels, tabularize_levels
from mesascope.properties.gridworld import split_exact, witness_policies
from mesascope.scenarios.base import get_scenario
from mesascope.solve.dp import stop_on_arrival, value_iteration
from mesascope.types import Objective

GAMMA = 0.9


def _random_levels(seed: int, *, levels: int = 4, s: int = 9, a: int = 3):
    """Random deterministic MDPs whose last state is absorbing; one 0/1 feature pays on some transitions."""
    rng = np.random.default_rng(seed)
    ns = rng.integers(0, s - 1, size=(levels, s, a)).astype(np.int32)
    ns[:, :, 0] = np.where(rng.random((levels, s)) < 0.2, s - 1, ns[:, :, 0])  # some transitions end the episode
    ns[:, s - 1, :] = s - 1
    ft = (rng.random((levels, s, a, 1)) < 0.25).astype(np.float32)
    ft[:, s - 1] = 0.0
    term = np.zeros((levels, s), bool)
    term[:, s - 1] = True
    start = rng.integers(0, s - 1, size=(levels,)).astype(np.int32)
    tab = TabularMDP(jnp.asarray(ns), jnp.asarray(ft), jnp.asarray(start), jnp.asarray(term))
    logits = rng.normal(size=(levels, s, a)) * 2.0
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return tab, (probs / probs.sum(-1, keepdims=True)).astype(np.float32)


def _first_arrival_value(ns, pays, start, probs, gamma, horizon=400):
    """sum_t gamma^t P(the first paying transition is the t-th): state mass is propagated by hand and
    removed from play when it arrives, a second implementation of the reach semantics."""
    mass = np.zeros(ns.shape[0])
    mass[start] = 1.0
    value = 0.0
    for t in range(horizon):
        nxt = np.zeros_like(mass)
        for s in range(ns.shape[0]):
            for a in range(ns.shape[1]):
                m = mass[s] * probs[s, a]
                if pays[s, a]:
                    value += gamma**t * m
                else:
                    nxt[ns[s, a]] += m
        mass = nxt
    return value


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reach_value_is_the_discounted_first_arrival(seed):
    tab, probs = _random_levels(seed)
    scores = score_levels(tab, jnp.asarray(probs), jnp.ones((1, 1)), GAMMA, reach=np.array([True]))
    for i in range(tab.start.shape[0]):
        ns, pays = np.asarray(tab.next_state[i]), np.asarray(tab.features[i, ..., 0]) > 0
        expected = _first_arrival_value(ns, pays, int(tab.start[i]), probs[i], GAMMA)
        np.testing.assert_allclose(float(scores.v_policy[i, 0]), expected, rtol=1e-4, atol=1e-6)


def test_reach_flags_change_only_the_flagged_objective():
    tab, probs = _random_levels(3)
    w = jnp.ones((2, 1))
    plain = score_levels(tab, jnp.asarray(probs), w, GAMMA)
    mixed = score_levels(tab, jnp.asarray(probs), w, GAMMA, reach=np.array([False, True]))
    np.testing.assert_allclose(np.asarray(mixed.v_policy[:, 0]), np.asarray(plain.v_policy[:, 0]), rtol=1e-6)
    # Paying on every visit is worth at least as much as paying once.
    assert (np.asarray(mixed.v_policy[:, 1]) <= np.asarray(plain.v_policy[:, 1]) + 1e-6).all()
    assert (np.asarray(mixed.v_policy[:, 1]) < np.asarray(plain.v_policy[:, 1]) - 1e-3).any()


def test_reach_flags_are_validated():
    tab, probs = _random_levels(4)
    with pytest.raises(ValueError, match="one per objective"):
        score_levels(tab, jnp.asarray(probs), jnp.ones((2, 1)), GAMMA, reach=np.array([True]))
    no_terminal = tab._replace(terminal=jnp.zeros_like(tab.terminal))
    with pytest.raises(ValueError, match="absorbing terminal state"):
        score_levels(no_terminal, jnp.asarray(probs), jnp.ones((1, 1)), GAMMA, reach=np.array([True]))


def test_stop_on_arrival_leaves_non_paying_transitions_alone():
    ns = jnp.array([[1, 2], [2, 0], [2, 2]], jnp.int32)
    r = jnp.array([[0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])
    term = jnp.array([False, False, True])
    np.testing.assert_array_equal(np.asarray(stop_on_arrival(ns, r, term)), [[1, 2], [2, 0], [2, 2]])
    np.testing.assert_array_equal(np.asarray(stop_on_arrival(ns, r, term, False)), np.asarray(ns))
    r2 = jnp.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(stop_on_arrival(ns, r2, term)), [[2, 2], [2, 0], [2, 2]])


@pytest.fixture(scope="module")
def corner_level():
    scenario = get_scenario("cheese-corner-v0")
    levels = scenario.sample_levels(jax.random.key(7), 24, "deploy")
    tab = tabularize_levels(scenario.spec, levels)
    names, weights = scenario.weight_matrix()
    return scenario, tab, names, weights


def test_corner_goal_is_a_reach_goal_and_leaving_the_corner_costs_nothing(corner_level):
    """A system that goes straight to the corner and then walks off scores J_corner = 1: arriving is the
    goal. Scored as 'paid for every step on the corner' the same system would lose most of its value."""
    scenario, tab, names, weights = corner_level
    reach = scenario.reach_mask()
    assert [n for n, r in zip(names, reach) if r] == ["corner"]
    i_corner = names.index("corner")
    w = jnp.asarray(weights[i_corner])

    def leave_after_arrival(ns, ft, term):
        r = ft @ w
        q = value_iteration(stop_on_arrival(ns, r, term), r, scenario.spec.gamma).q
        # On the corner square a blocked move keeps the mouse there and pays: walk away instead.
        on_corner = ((ns == jnp.arange(ns.shape[0])[:, None]) & (r > 0)).any(-1)
        best = jax.nn.one_hot(q.argmax(-1), q.shape[-1])
        away = jax.nn.one_hot(q.argmin(-1), q.shape[-1])
        return jnp.where(on_corner[:, None], away, best)

    probs = jax.vmap(leave_after_arrival)(tab.next_state, tab.features, tab.terminal)
    reach_scores = score_levels(tab, probs, weights, scenario.spec.gamma, reach=reach)
    camp_j = np.asarray(score_levels(tab, probs, weights, scenario.spec.gamma).j[:, i_corner])
    np.testing.assert_allclose(np.asarray(reach_scores.j[:, i_corner]), 1.0, atol=1e-4)
    # Levels where the corner can be reached without eating the cheese (elsewhere every policy scores 1).
    open_path = np.asarray(reach_scores.v_optimal - reach_scores.v_uniform)[:, i_corner] > 1e-6
    assert open_path.sum() >= 5
    assert camp_j[open_path].max() < 0.6


def test_reach_goal_pursuer_and_posterior(corner_level):
    scenario, tab, names, weights = corner_level
    goals = [g.name for g in scenario.candidate_goals]
    goal_w = weights[[names.index(g) for g in goals]]
    goal_reach = np.array([g.reach for g in scenario.candidate_goals])
    gamma = scenario.spec.gamma
    objectives = {n: weights[i] for i, n in enumerate(names)}
    reach = [n for n, r in zip(names, scenario.reach_mask()) if r]
    exact = split_exact(tab, objectives, goals, gamma, key=jax.random.key(0), reach=reach)
    # The corner pursuer goes round the deploy cheese whenever it can: J_intended below the uniform policy.
    assert exact.estimate(exact.pursuer_j_int[:, goals.index("corner")], "intended").mean < 0.0
    pursuers = jnp.stack([
        witness_policies(jax.tree_util.tree_map(lambda x, i=i: x[i], tab), weights[0], weights[1], goal_w, goals,
                         gamma, goal_reach=goal_reach)["pursue:corner"]
        for i in range(tab.start.shape[0])
    ])
    np.testing.assert_allclose(np.asarray(pursuers).sum(-1), 1.0, atol=1e-6)
    corner_j = np.asarray(score_levels(tab, pursuers, weights, gamma, reach=scenario.reach_mask()).j)
    np.testing.assert_allclose(corner_j[:, names.index("corner")], 1.0, atol=1e-4)
    post = goal_posterior(tab, pursuers, jnp.asarray(goal_w), gamma, names=tuple(goals), reach=goal_reach)
    assert post.best == "corner"


def test_objective_reach_defaults_to_false():
    assert Objective.of("cheese", {"cheese": 1.0}).reach is False
    assert Objective.of("corner", {"corner": 1.0}, reach=True).reach is True
