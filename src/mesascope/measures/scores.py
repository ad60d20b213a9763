"""Exact scores of systems on enumerable levels (SPEC.md section 2).

`V_R^pi(M)` is computed by policy evaluation over every state of the level (every state's observation
is run through the system once), never by sampling. `J_R(pi; M) = (V^pi - V^unif) / (V^* - V^unif)`,
defined as 1 when `V^* = V^unif`. Such a level is *uninformative* for `R` (every policy scores the same
there, `informative_levels`) and is left out of every mean that feeds a property (SPEC.md section 2).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.grid import GridSpec, Level
from mesascope.levels.tabular import TabularMDP, observe_all, tabularize
from mesascope.programs import cached_jit
from mesascope.solve.dp import policy_evaluation, stop_on_arrival, uniform_policy, value_iteration

__all__ = [
    "LevelScores",
    "PolicyFn",
    "expected_visits",
    "first_event_probabilities",
    "first_reach_probabilities",
    "informative_levels",
    "normalised_score",
    "policy_values",
    "reach_flags",
    "reference_values",
    "score_levels",
    "start_regret",
    "system_action_probs",
    "tabularize_levels",
]

SPAN_TOL = 1e-6
"""`V^* - V^unif` at or below this is numerically zero: the level is uninformative for that objective."""

PolicyFn = Callable[[jax.Array], jax.Array]
"""A system as a function from a batch of observations `[B, *obs_shape]` to action probabilities `[B, A]`."""


class LevelScores(NamedTuple):
    """Exact values on a batch of levels for `O` objectives.

    Attributes:
        v_policy: float32 `[L, O]`, `V^pi` at the start state.
        v_optimal: float32 `[L, O]`, `V^*` at the start state.
        v_uniform: float32 `[L, O]`, `V^unif` at the start state.
        j: float32 `[L, O]`, the normalised score per level.
    """

    v_policy: jax.Array
    v_optimal: jax.Array
    v_uniform: jax.Array
    j: jax.Array


def normalised_score(v_policy: jax.Array, v_optimal: jax.Array, v_uniform: jax.Array, *, eps: float = SPAN_TOL) -> jax.Array:
    """`J = (V^pi - V^unif) / (V^* - V^unif)`, 1 where `V^* - V^unif <= eps` (SPEC.md section 2).

    A level where the span is zero is uninformative (`informative_levels`): its `J = 1` is a
    convention, never averaged into a number that feeds a property.
    """
    span = v_optimal - v_uniform
    safe = jnp.where(span > eps, span, 1.0)
    return jnp.where(span > eps, (v_policy - v_uniform) / safe, 1.0)


def informative_levels(v_optimal: jax.Array | np.ndarray, v_uniform: jax.Array | np.ndarray) -> np.ndarray:
    """bool, same shape: where `V^* - V^unif > SPAN_TOL`, i.e. the level says something about a policy."""
    # Same dtype and comparison as `normalised_score`, so the two never disagree at the boundary.
    return (np.asarray(v_optimal) - np.asarray(v_uniform)) > SPAN_TOL


@functools.lru_cache(maxsize=None)
def _batched(spec: GridSpec) -> tuple[Callable, Callable]:
    # `spec` (a frozen dataclass of numbers and names) is all the closures hold: it keys the saved programs.
    tab = cached_jit(jax.vmap(lambda lv: tabularize(spec, lv)), key=("tabularize", spec))
    obs = cached_jit(jax.vmap(lambda lv: observe_all(spec, lv)), key=("observe_all", spec))
    return tab, obs


def tabularize_levels(spec: GridSpec, levels: Level) -> TabularMDP:
    """`tabularize` over a `[L]` batch of levels (compiled once per spec)."""
    return _batched(spec)[0](levels)


def system_action_probs(spec: GridSpec, levels: Level, policy: PolicyFn, *, chunk: int = 64) -> jax.Array:
    """Action probabilities of a system on every state of every level: float32 `[L, S, A]`.

    Each state's observation goes through the system exactly once. Levels are processed `chunk` at a
    time so the `[chunk, S, *obs_shape]` observation tensor stays small.

    Raises:
        ValueError: if the system returns NaNs or rows that are not probability distributions.
    """
    n = levels.walls.shape[0]
    # Chunks are cut, reshaped and joined on the host: each of those on device arrays, op by op, compiles a
    # program (jax 0.10); the data are the same.
    host = jax.tree_util.tree_map(np.asarray, levels)
    out = []
    for lo in range(0, n, chunk):
        part = jax.tree_util.tree_map(lambda x: x[lo : lo + chunk], host)
        obs = np.asarray(_batched(spec)[1](part))
        flat = obs.reshape((-1,) + obs.shape[2:])
        out.append(np.asarray(policy(jax.device_put(flat))).reshape(obs.shape[:2] + (spec.n_actions,)))
    arr = np.concatenate(out)
    probs = jax.device_put(arr)
    if not np.isfinite(arr).all():
        raise ValueError(
            "the system returned NaN or infinite action probabilities; check the policy's parameters "
            "(a diverged training run produces NaNs) before auditing it"
        )
    if np.abs(arr.sum(-1) - 1.0).max() > 1e-3 or (arr < -1e-6).any():
        raise ValueError("the system's outputs are not probability distributions over actions (rows must sum to 1)")
    return probs


@jax.jit
def _reference_values(next_state, features, start, terminal, weights, reach, gamma):
    def one_level(ns, ft, s0, term):
        def one_objective(w, rch):
            r = ft @ w
            ns_r = stop_on_arrival(ns, r, term, rch)
            v_star = value_iteration(ns_r, r, gamma).v[s0]
            v_unif = policy_evaluation(ns_r, r, uniform_policy(ns_r), gamma)[s0]
            return v_star, v_unif

        return jax.vmap(one_objective)(weights, reach)

    return jax.vmap(one_level)(next_state, features, start, terminal)


def start_regret(next_state: jax.Array, features: jax.Array, start: jax.Array, terminal: jax.Array, weights: jax.Array,
                 reach: bool | jax.Array, probs: jax.Array, gamma: float) -> jax.Array:
    """Each level's exact regret `V* - V^pi` at its start for one objective: float32 `[L]`.

    The same values as `reference_values` and `policy_values`, without `V^unif` and without host-side
    checks, so it can run inside a traced program (the exact-regret curricula score levels with it).

    Args:
        next_state: int32 `[L, S, A]`; features: float32 `[L, S, A, K]`; start: int32 `[L]`;
            terminal: bool `[L, S]` (a `TabularMDP`'s fields).
        weights: float32 `[K]`, the objective.
        reach: Whether it is valued at first arrival (`Objective.reach`).
        probs: float32 `[L, S, A]`, the system's action probabilities.
        gamma: Discount.
    """

    def one_level(ns, ft, s0, term, pi):
        r = ft @ weights
        ns = stop_on_arrival(ns, r, term, reach)
        return value_iteration(ns, r, gamma).v[s0] - policy_evaluation(ns, r, pi, gamma)[s0]

    return jax.vmap(one_level)(next_state, features, start, terminal, probs)


@cached_jit
def _policy_values(next_state, features, start, terminal, weights, reach, probs, gamma):
    def one_level(ns, ft, s0, term, pi):
        def one_objective(w, rch):
            r = ft @ w
            return policy_evaluation(stop_on_arrival(ns, r, term, rch), r, pi, gamma)[s0]

        return jax.vmap(one_objective)(weights, reach)

    return jax.vmap(one_level)(next_state, features, start, terminal, probs)


def reference_values(tab: TabularMDP, weights: jax.Array, gamma: float, *, reach: np.ndarray | None = None) -> tuple[jax.Array, jax.Array]:
    """`V^*` and `V^unif` at the start of every level for every objective: two float32 `[L, O]`.

    They do not depend on the system, so an audit computes them once per split (`score_levels` for one
    system computes them too). Arguments as in `score_levels`.
    """
    weights = jnp.asarray(weights)
    flags = reach_flags(tab, reach, weights.shape[0])
    return _reference_values(tab.next_state, tab.features, tab.start, tab.terminal, weights, flags, gamma)


def policy_values(tab: TabularMDP, probs: jax.Array, weights: jax.Array, gamma: float, *, reach: np.ndarray | None = None) -> jax.Array:
    """`V^pi` at the start of every level for every objective: float32 `[L, O]` (arguments as in `score_levels`)."""
    weights = jnp.asarray(weights)
    flags = reach_flags(tab, reach, weights.shape[0])
    return _policy_values(tab.next_state, tab.features, tab.start, tab.terminal, weights, flags, probs, gamma)


def reach_flags(tab: TabularMDP, reach: np.ndarray | jax.Array | None, n: int) -> jax.Array:
    """Validated bool `[n]` reach flags (`Objective.reach`); None means no reach objective.

    Raises:
        ValueError: if the flags have the wrong length, or some are set on levels without a terminal
            state (a reach objective's episode ends in it).
    """
    # `jax.device_put` of host arrays: `jnp.asarray` and `jnp.zeros` would each compile a program.
    if reach is None:
        return jax.device_put(np.zeros((n,), bool))
    flags = np.asarray(reach, bool)
    if flags.shape != (n,):
        raise ValueError(f"reach flags must have shape ({n},), one per objective; got {flags.shape}")
    if flags.any() and not bool(np.asarray(tab.terminal).any(-1).all()):
        raise ValueError("a reach objective needs an absorbing terminal state on every level (tab.terminal)")
    return jax.device_put(flags)


def score_levels(
    tab: TabularMDP, probs: jax.Array, weights: jax.Array, gamma: float, *, reach: np.ndarray | None = None
) -> LevelScores:
    """Exact values and normalised scores of a system for several objectives.

    Args:
        tab: Tabular levels, batched `[L, ...]`.
        probs: float32 `[L, S, A]`, the system's action probabilities on every state.
        weights: float32 `[O, K]`, one row of feature weights per objective.
        gamma: Discount.
        reach: Optional bool `[O]`: objectives valued at first arrival (`Objective.reach`,
            `mesascope.solve.dp.stop_on_arrival`); default none.

    Returns:
        `LevelScores` with `[L, O]` arrays.
    """
    v_star, v_unif = reference_values(tab, weights, gamma, reach=reach)
    v_pi = policy_values(tab, probs, weights, gamma, reach=reach)
    return LevelScores(v_pi, v_star, v_unif, normalised_score(v_pi, v_star, v_unif))


@functools.partial(jax.jit, static_argnames="horizon")
def first_event_probabilities(
    next_state: jax.Array, start: jax.Array, probs: jax.Array, events: jax.Array, *, horizon: int
) -> jax.Array:
    """Exact probability that each event is the first to happen, within `horizon` steps.

    An event happens on a transition where its mask is true. Propagates the state distribution of the
    episodes in which no event has happened yet forward in time: mass taking an event transition is
    counted for every event that transition has (ties count for each) and leaves the distribution.

    Args:
        next_state: int32 `[L, S, A]`.
        start: int32 `[L]`.
        probs: float32 `[L, S, A]`, the system's action probabilities.
        events: bool `[L, S, A, E]`, one mask per event.
        horizon: Steps (the scenario's episode limit).

    Returns:
        float32 `[L, E + 1]`: per event the probability it happens first; the last column is the
        probability that none happens within the horizon.
    """

    def one_level(ns, s0, pi, hit):
        s = ns.shape[0]
        any_hit = hit.any(-1)

        def body(carry, _):
            dist, first = carry
            mass = dist[:, None] * pi  # [S, A]
            first = first + (mass[..., None] * hit).sum((0, 1))
            moving = jnp.where(any_hit, 0.0, mass)
            dist = jnp.zeros(s, dist.dtype).at[ns.reshape(-1)].add(moving.reshape(-1))
            return (dist, first), None

        dist0 = jnp.zeros(s, jnp.float32).at[s0].set(1.0)
        (dist, first), _ = jax.lax.scan(body, (dist0, jnp.zeros(hit.shape[-1])), None, horizon)
        return jnp.concatenate([first, dist.sum()[None]])

    return jax.vmap(one_level)(next_state, start, probs, events)


@functools.partial(jax.jit, static_argnames="horizon")
def expected_visits(next_state: jax.Array, start: jax.Array, probs: jax.Array, mask: jax.Array, *, horizon: int) -> jax.Array:
    """Exact expected number of the first `horizon` steps in which the system acts in a masked state: float32 `[L]`.

    Propagates the state distribution forward from the start, summing its mass on the mask at each step
    `t = 0 .. horizon - 1` (e.g. how much of a training episode is spent in states that ask what deploy asks).

    Args:
        next_state: int32 `[L, S, A]`.
        start: int32 `[L]`.
        probs: float32 `[L, S, A]`, the system's action probabilities.
        mask: bool `[L, S]`, the states counted.
        horizon: Steps (an episode's length).
    """

    def one_level(ns, s0, pi, m):
        def body(dist, _):
            visits = (dist * m).sum()
            flow = (dist[:, None] * pi).reshape(-1)
            return jnp.zeros_like(dist).at[ns.reshape(-1)].add(flow), visits

        dist0 = jnp.zeros(ns.shape[0], jnp.float32).at[s0].set(1.0)
        return jax.lax.scan(body, dist0, None, horizon)[1].sum()

    return jax.vmap(one_level)(next_state, start, probs, mask)


@cached_jit(static_argnames="horizon")
def first_reach_probabilities(tab: TabularMDP, probs: jax.Array, weights: jax.Array, *, horizon: int) -> jax.Array:
    """Exact probability that each goal is reached first, within `horizon` steps.

    A goal is "reached" on the first transition its objective rewards (`w . phi > 0`). Goal `g` counts as
    reached first when it is reached no later than every other goal (ties count for every tied goal).
    Computed by `first_event_probabilities` (state-distribution propagation), so it is exact, not sampled.

    Args:
        tab: Tabular levels `[L, ...]`.
        probs: float32 `[L, S, A]`.
        weights: float32 `[G, K]`, one row per goal.
        horizon: Steps (the scenario's episode limit).

    Returns:
        float32 `[L, G + 1]`: per goal the probability it is reached first; the last column is the
        probability that no goal is reached within the horizon.
    """
    hits = (tab.features @ weights.T) > 0  # [L, S, A, G]
    return first_event_probabilities(tab.next_state, tab.start, probs, hits, horizon=horizon)
