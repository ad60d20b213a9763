"""Objective distances on gridworld levels (SPEC.md section 3), as the audit reports them.

Every objective is compared in its transition form `R(s, a, s') = sa[s, a] + next[s']`
(`mesascope.levels.tabular.TransitionReward`): the part that depends on the next state alone is kept as a
function of `s'`, never folded into a table `r(s, a)`, so EPIC's canonicalisation removes potential
shaping exactly (two potential-shaped versions of one reward are at distance 0). EPIC uses the closed-form
product-coverage canonicalisation (`epic_distance_decomposed`), with `D_S` uniform over the **live
states reachable from the level's start** (wall squares and impossible object configurations are not
part of the level's coverage) and `D_A` uniform. The distance is computed per level; `pairwise_epic`
reports the mean over the audited levels and `pairwise_epic_levels` the per-level values behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.tabular import TabularMDP, TransitionReward
from mesascope.measures.epic import epic_distance_decomposed
from mesascope.programs import cached_jit

__all__ = ["as_transition_reward", "coverage", "pairwise_epic", "pairwise_epic_levels", "reachable_states"]


def reachable_states(tab: TabularMDP) -> jax.Array:
    """bool `[S]`: states reachable from the start under some policy (one level; vmap for batches)."""
    s = tab.next_state.shape[0]
    start = jnp.zeros(s, bool).at[tab.start].set(True)

    def body(_, reach):
        nxt = jnp.zeros(s, bool).at[tab.next_state.reshape(-1)].max(jnp.repeat(reach, tab.next_state.shape[1]))
        return reach | nxt

    return jax.lax.fori_loop(0, s, body, start)


@cached_jit
def _coverage(next_state: jax.Array, start: jax.Array, terminal: jax.Array) -> jax.Array:
    tab = TabularMDP(next_state, jnp.zeros(next_state.shape + (0,)), start, terminal)
    live = jax.vmap(reachable_states)(tab) & ~terminal
    return live / jnp.maximum(live.sum(-1, keepdims=True), 1)


def as_transition_reward(reward: TransitionReward | jax.Array) -> TransitionReward:
    """A `TransitionReward` as is; a bare `[..., S, A]` table as a reward that does not depend on `s'`."""
    if isinstance(reward, TransitionReward):
        return reward
    reward = jnp.asarray(reward, jnp.float32)
    return TransitionReward(reward, jnp.zeros(reward.shape[:-1], reward.dtype))


def coverage(tab: TabularMDP) -> jax.Array:
    """EPIC's state coverage `D_S`: uniform over each level's live states reachable from its start, `[L, S]`."""
    return _coverage(tab.next_state, tab.start, tab.terminal)


def pairwise_epic_levels(
    tab: TabularMDP,
    rewards: Mapping[str, TransitionReward | jax.Array],
    gamma: float,
    *,
    known: Mapping[str, np.ndarray] | None = None,
    state_dist: jax.Array | None = None,
) -> dict[str, np.ndarray]:
    """EPIC distance between every pair of objectives, on every level.

    Args:
        tab: Tabular levels `[L, ...]`.
        rewards: name -> `TransitionReward` with `sa` `[L, S, A]` and `next` `[L, S]` (a bare `[L, S, A]`
            table is read as a reward of `(s, a)` alone).
        gamma: Discount.
        known: Pairs already computed (`"a~b" -> [L]`, e.g. between the scenario's fixed objectives, once
            per split); they are reused, not recomputed.
        state_dist: The coverage (`coverage(tab)`), if already computed.

    Returns:
        `{"a~b": float [L]}` for every unordered pair, in the order of `rewards`.
    """
    dist = coverage(tab) if state_dist is None else state_dist
    known = known or {}
    forms = {name: as_transition_reward(r) for name, r in rewards.items()}
    out = {}
    for a, b in combinations(list(forms), 2):
        key = f"{a}~{b}"
        if key in known:
            out[key] = known[key]
            continue
        ra, rb = forms[a], forms[b]
        d = epic_distance_decomposed(ra.sa, ra.next, rb.sa, rb.next, gamma=gamma, state_dist=dist)
        out[key] = np.asarray(d, np.float64)
    return out


def pairwise_epic(tab: TabularMDP, rewards: Mapping[str, TransitionReward | jax.Array], gamma: float) -> dict[str, float]:
    """`pairwise_epic_levels` averaged over levels: `{"a~b": distance}`."""
    return {k: float(v.mean()) for k, v in pairwise_epic_levels(tab, rewards, gamma).items()}
