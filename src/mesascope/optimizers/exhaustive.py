"""A perfect base optimizer over a small system space: exhaustive search (SPEC.md sections 2 and 7).

Seed `001_e249e0ee6ea298d6.txt` separates failures that survive *perfect* optimisation on the training
distribution from those that come from imperfect optimisation. On a space small enough to enumerate, a
perfect optimizer is not a thought experiment: score every system exactly on the training levels and keep
the argmax. Here the systems are explicit mesa-optimizers (`mesascope.systems.mesa`) whose mesa-objective
weights lie on a finite grid; each is scored by exact policy evaluation of the base objective, so ties are
exact ties (identical action probabilities give bitwise identical values), not sampling noise.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.grid import Level
from mesascope.levels.tabular import TabularMDP
from mesascope.solve.dp import policy_evaluation_dense
from mesascope.systems.mesa import MesaParams, TrainResult

__all__ = ["MAX_SYSTEMS", "SearchResult", "enumerate_grid", "exhaustive_search", "train_exhaustive"]

MAX_SYSTEMS = 20_000
"""Refuse to enumerate more systems than this (the search is exact, so it is also exhaustive in time)."""

TIE_ATOL = 1e-6
"""Systems within this of the best mean base value count as training-optimal (float32 rounding only)."""


class SearchResult(NamedTuple):
    """Every system of the space, scored exactly.

    Attributes:
        thetas: float32 `[P, M]`, all mesa-objective weight vectors of the grid.
        scores: float32 `[P]`, mean exact base value `V^pi_base(start)` over the training levels.
        optimal: bool `[P]`, training-optimal (within `TIE_ATOL` of the best score).
    """

    thetas: np.ndarray
    scores: np.ndarray
    optimal: np.ndarray


def enumerate_grid(values: Sequence[float], dims: int) -> np.ndarray:
    """All points of `values ** dims`: float32 `[len(values) ** dims, dims]` (first axis varies slowest).

    Raises:
        ValueError: when the grid holds more than `MAX_SYSTEMS` points.
    """
    count = len(values) ** dims
    if count > MAX_SYSTEMS:
        raise ValueError(f"{len(values)}^{dims} = {count} systems is too many to enumerate (limit {MAX_SYSTEMS}); use a coarser grid")
    return np.asarray(list(itertools.product(values, repeat=dims)), np.float32).reshape(count, dims)


def exhaustive_search(
    system: Any,
    levels: Level,
    tabs: TabularMDP,
    w_base: jax.Array,
    *,
    values: Sequence[float] = (-1.0, 0.0, 1.0),
    gamma: float = 0.99,
    chunk: int = 27,
) -> SearchResult:
    """Score every mesa-objective on the grid `values ** M` exactly on the training levels.

    Args:
        system: A mesa-optimizer (`action_probs(params, level, tab) -> [S, A]`, `feature_names`).
        levels, tabs: A `[L]` batch of training levels and their tabular views.
        w_base: float32 `[K]`, the base objective's weights.
        values: The grid of weights per mesa feature.
        gamma: Discount of the base objective's value.
        chunk: Systems scored per compiled call (bounds memory).

    Returns:
        A `SearchResult` over all `len(values) ** M` systems.
    """
    thetas = enumerate_grid(values, len(system.feature_names))

    def value(theta: jax.Array) -> jax.Array:
        def one(level: Level, tab: TabularMDP) -> jax.Array:
            probs = system.action_probs(MesaParams(theta), level, tab)
            return policy_evaluation_dense(tab.next_state, tab.features @ w_base, probs, gamma)[tab.start]

        return jax.vmap(one)(levels, tabs).mean()

    score = jax.jit(jax.vmap(value))
    scores = []
    for lo in range(0, len(thetas), chunk):
        scores.append(np.asarray(score(jnp.asarray(thetas[lo : lo + chunk]))))
    scores_arr = np.concatenate(scores)
    return SearchResult(thetas, scores_arr, scores_arr >= scores_arr.max() - TIE_ATOL)


def train_exhaustive(
    system: Any,
    levels: Level,
    tabs: TabularMDP,
    w_base: jax.Array,
    *,
    key: jax.Array,
    values: Sequence[float] = (-1.0, 0.0, 1.0),
    gamma: float = 0.99,
) -> TrainResult:
    """The perfect base optimizer: a training-optimal system, ties broken uniformly at random by `key`.

    Returns:
        `TrainResult` whose curve is the best score found so far along the enumeration order `[P]`.
    """
    result = exhaustive_search(system, levels, tabs, w_base, values=values, gamma=gamma)
    winners = np.flatnonzero(result.optimal)
    pick = int(winners[int(jax.random.randint(key, (), 0, len(winners)))])
    return TrainResult(MesaParams(jnp.asarray(result.thetas[pick])), np.maximum.accumulate(result.scores))
