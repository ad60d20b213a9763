"""Objective distances on gridworld levels, as reported in the audit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.measures.distances import pairwise_epic, reachable_states
from mesascope.measures.scores import tabularize_levels
from mesascope.scenarios import get_scenario


def _bfs(next_state, start):
    seen, frontier = {start}, [start]
    while frontier:
        s = frontier.pop()
        for t in next_state[s]:
            if int(t) not in seen:
                seen.add(int(t))
                frontier.append(int(t))
    return seen


def test_reachable_states_match_breadth_first_search():
    sc = get_scenario("cheese-corner-v0")
    tab = tabularize_levels(sc.spec, sc.sample_levels(jax.random.key(0), 4, "deploy"))
    for i in range(4):
        one = jax.tree_util.tree_map(lambda x: x[i], tab)
        got = set(np.flatnonzero(np.asarray(reachable_states(one))).tolist())
        assert got == _bfs(np.asarray(one.next_state), int(one.start))


def test_pairwise_epic_is_zero_for_rescaled_rewards_and_one_for_negation():
    sc = get_scenario("cheese-corner-v0")
    tab = tabularize_levels(sc.spec, sc.sample_levels(jax.random.key(1), 8, "deploy"))
    names, weights = sc.weight_matrix()
    cheese = tab.features @ jnp.asarray(weights[names.index("cheese")])
    corner = tab.features @ jnp.asarray(weights[names.index("corner")])
    d = pairwise_epic(tab, {"cheese": cheese, "scaled": 3.0 * cheese, "negated": -cheese, "corner": corner}, 0.99)
    assert d["cheese~scaled"] < 1e-4
    assert abs(d["cheese~negated"] - 1.0) < 1e-4
    assert 0.05 < d["cheese~corner"] < 1.0
