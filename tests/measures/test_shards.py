"""Shards (SPEC.md section 4): the behavioral objective fitted per context recovers a system that pursues
one goal in one context and another goal elsewhere, and reports a single shard for a one-goal system."""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.measures.distances import reachable_states
from mesascope.measures.scores import tabularize_levels
from mesascope.measures.shards import (
    Context,
    context_labels,
    distance_context,
    fit_shards,
    format_shards,
    nearer_context,
    scenario_shards,
    steps_to_feature,
)
from mesascope.scenarios.base import get_scenario
from mesascope.measures.goal_posterior import goal_q_values
from mesascope.solve.dp import optimal_action_mask
from mesascope.types import MesascopeError


def _optimal_policy(q: jax.Array) -> jax.Array:
    mask = optimal_action_mask(q).astype(jnp.float32)
    return mask / mask.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def deploy():
    """24 deploy levels of cheese-corner-v0, each goal's optimal policy, and reachable-state weights."""
    scenario = get_scenario("cheese-corner-v0")
    levels = scenario.sample_levels(jax.random.PRNGKey(11), 24, "deploy")
    tab = tabularize_levels(scenario.spec, levels)
    gamma = scenario.spec.gamma
    goal_w = jnp.asarray(np.stack([g.vector(scenario.feature_names) for g in scenario.candidate_goals]))
    q = goal_q_values(tab.next_state, tab.features, goal_w, gamma)  # one solve, shared by every test
    pol = {goal.name: _optimal_policy(q[i]) for i, goal in enumerate(scenario.candidate_goals)}
    # Every live reachable state counts once: the test must not depend on where a system happens to go.
    weights = (jax.vmap(reachable_states)(tab) & ~tab.terminal).astype(jnp.float32)
    return scenario, levels, tab, pol, weights, q


def _brute_steps(next_state: np.ndarray, fires: np.ndarray) -> np.ndarray:
    """Breadth-first search backwards from the firing transitions."""
    s = next_state.shape[0]
    out = np.full(s, s + 1)
    preds = [[] for _ in range(s)]
    for x in range(s):
        for a in range(next_state.shape[1]):
            preds[next_state[x, a]].append(x)
    queue = deque()
    for x in range(s):
        if fires[x].any():
            out[x] = 1
            queue.append(x)
    while queue:
        y = queue.popleft()
        for x in preds[y]:
            if out[x] > out[y] + 1:
                out[x] = out[y] + 1
                queue.append(x)
    return out


def test_steps_to_feature_matches_breadth_first_search(deploy):
    scenario, _, tab, _, _, _ = deploy
    k = scenario.feature_names.index("cheese")
    for i in range(4):
        ns, fires = np.asarray(tab.next_state[i]), np.asarray(tab.features[i, ..., k]) != 0
        got = np.asarray(jax.jit(steps_to_feature)(jnp.asarray(ns), jnp.asarray(fires)))
        np.testing.assert_array_equal(got, _brute_steps(ns, fires))
    # The terminal state never fires anything.
    assert got[-1] == ns.shape[0] + 1


def test_a_two_goal_system_splits_into_two_shards(deploy):
    scenario, levels, tab, pol, weights, q = deploy
    ctx = distance_context("cheese", near=3)
    labels = context_labels(ctx, scenario.spec, levels, tab)
    near = (labels == 0)[..., None]
    # Goal A (cheese) where the cheese is within 3 steps, goal B (corner) everywhere else.
    probs = jnp.where(near, pol["cheese"], pol["corner"])
    goal_w = np.stack([g.vector(scenario.feature_names) for g in scenario.candidate_goals])
    table = fit_shards(
        tab, probs, labels, goal_w, scenario.spec.gamma, names=("cheese", "corner"), label_names=ctx.labels,
        context=ctx.name, state_weights=weights, q=q,
    )
    assert table.drivers == {"near": "cheese", "far": "corner"}, table.as_dict()
    assert table.shards == ("cheese", "corner")
    for label, goal in (("near", "cheese"), ("far", "corner")):
        fit = table.fits[table.labels.index(label)]
        i = fit.names.index(goal)
        assert fit.posterior[i] > 0.99 and fit.explains[i]
    np.testing.assert_allclose(table.share.sum(), 1.0, rtol=1e-6)
    assert 0.0 < table.share[0] < 1.0
    d = table.as_dict()
    assert d["n_shards"] == 2 and d["parts"]["near"]["best"] == "cheese"
    assert "2 shards" in format_shards({ctx.name: d})


@pytest.mark.parametrize("goal", ["cheese", "corner"])
def test_a_one_goal_system_has_one_shard(deploy, goal):
    scenario, levels, tab, pol, weights, q = deploy
    tables = scenario_shards(scenario, levels, tab, pol[goal], state_weights=weights, q=q)
    assert set(tables) == {c.name for c in scenario.contexts}
    for table in tables.values():
        assert table.shards == (goal,), table.as_dict()
        assert table.overall.best == goal
        assert all(v in (goal, None) for v in table.drivers.values())


def test_uniform_system_has_no_shard(deploy):
    scenario, levels, tab, _, weights, q = deploy
    tables = scenario_shards(scenario, levels, tab, jnp.full(tab.next_state.shape, 0.25), state_weights=weights, q=q)
    for table in tables.values():
        assert table.shards == () and all(v is None for v in table.drivers.values())
        assert "0 shards" in format_shards({table.context: table.as_dict()})


def test_parts_with_too_little_evidence_are_not_fitted(deploy):
    scenario, levels, tab, pol, weights, q = deploy
    ctx = nearer_context("cheese", "corner")
    labels = context_labels(ctx, scenario.spec, levels, tab)
    goal_w = np.stack([g.vector(scenario.feature_names) for g in scenario.candidate_goals])
    # Evidence only where the corner is nearer: the other part holds none and gets no fit.
    only = jnp.where(labels == 1, weights, 0.0)
    table = fit_shards(
        tab, pol["corner"], labels, goal_w, scenario.spec.gamma, names=("cheese", "corner"),
        label_names=ctx.labels, state_weights=only, q=q,
    )
    assert table.fits[0] is None and table.share[0] == 0.0
    assert table.as_dict()["parts"]["cheese_nearer"]["best"] is None
    assert table.shards == ("corner",)


def test_context_validation(deploy):
    scenario, levels, tab, _, _, _ = deploy
    with pytest.raises(MesascopeError, match="features are"):
        context_labels(distance_context("lava", near=2), scenario.spec, levels, tab)
    with pytest.raises(MesascopeError, match="at least 1"):
        distance_context("cheese", near=0)
    bad = Context("x", ("a",), "", lambda spec, lv, tb: jnp.zeros(tb.terminal.shape, jnp.int32))
    labels = context_labels(bad, scenario.spec, levels, tab)
    assert (np.asarray(labels)[np.asarray(tab.terminal)] == -1).all()
    with pytest.raises(ValueError, match="labels must have shape"):
        fit_shards(tab, jnp.full(tab.next_state.shape, 0.25), labels[:2], np.eye(3)[:2], 0.99,
                   names=("a", "b"), label_names=("a",))
