"""Objective distances on gridworld levels (SPEC.md section 3), as the audit reports them.

Gridworld transitions are deterministic, so an objective on a level is a table `r[s, a]` (the reward of
the one transition out of `s` under `a`). EPIC is applied to these tables as rewards `R(s, a, s') =
r[s, a]` with the closed-form product-coverage canonicalisation (`epic_distance_decomposed`), where the
coverage `D_S` is uniform over the **live states reachable from the level's start** (wall squares and
impossible object configurations are not part of the level's coverage) and `D_A` is uniform. The
distance is averaged over the audited levels.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import jax
import jax.numpy as jnp

from mesascope.levels.tabular import TabularMDP
from mesascope.measures.epic import epic_distance_decomposed

__all__ = ["pairwise_epic", "reachable_states"]


def reachable_states(tab: TabularMDP) -> jax.Array:
    """bool `[S]`: states reachable from the start under some policy (one level; vmap for batches)."""
    s = tab.next_state.shape[0]
    start = jnp.zeros(s, bool).at[tab.start].set(True)

    def body(_, reach):
        nxt = jnp.zeros(s, bool).at[tab.next_state.reshape(-1)].max(jnp.repeat(reach, tab.next_state.shape[1]))
        return reach | nxt

    return jax.lax.fori_loop(0, s, body, start)


@jax.jit
def _coverage(tab: TabularMDP) -> jax.Array:
    live = jax.vmap(reachable_states)(tab) & ~tab.terminal
    return live / jnp.maximum(live.sum(-1, keepdims=True), 1)


def pairwise_epic(tab: TabularMDP, rewards: Mapping[str, jax.Array], gamma: float) -> dict[str, float]:
    """EPIC distance between every pair of objectives, averaged over levels.

    Args:
        tab: Tabular levels `[L, ...]`.
        rewards: name -> float32 `[L, S, A]` reward table.
        gamma: Discount.

    Returns:
        `{"a~b": distance}` for every unordered pair, in the order of `rewards`.
    """
    dist = _coverage(tab)
    zeros = jnp.zeros(dist.shape, jnp.float32)
    out = {}
    for a, b in combinations(list(rewards), 2):
        d = epic_distance_decomposed(rewards[a], zeros, rewards[b], zeros, gamma=gamma, state_dist=dist)
        out[f"{a}~{b}"] = float(jnp.mean(d))
    return out
