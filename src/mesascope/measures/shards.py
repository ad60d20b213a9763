"""Shards: the behavioral objective fitted separately per context (SPEC.md section 4).

A system need not pursue one goal everywhere. Turner et al. 2023 ("Understanding and controlling a
maze-solving policy network") found that the procgen maze agent of Langosco et al. 2022 heads for the
cheese when it is close to it and for the top-right corner otherwise: different goals drive behaviour in
different parts of the state space. Shard theory (Pope and Turner 2022) calls such context-bound drives
"shards". This module makes the idea a measurement:

1. A **context** (`Context`) partitions each level's live states by a declared, observable feature of the
   situation, e.g. "the cheese is at most 3 steps away" versus "further". Scenarios declare their
   contexts (`Scenario.contexts`); `distance_context` and `nearer_context` build the common ones from the
   level's own features and dynamics, so no context is ever computed from the system's behaviour.
2. Within each part the Boltzmann-rational goal posterior (`mesascope.measures.goal_posterior`) is
   fitted on that part's states only: the candidate goals' `Q*` are solved once on the whole level (a
   goal's value does not depend on which context the system is in), and only the evidence weights are
   restricted. Each part gets its own rationality `beta`, best goal, posterior and fit quality.
3. The **shards** of a context are the distinct best goals over the parts whose fit explains the
   behaviour (`fit_quality >= threshold`, `kappa`) on enough evidence (`min_share`). One shard means one goal
   drives behaviour in every part; two or more mean different goals drive it in different contexts.

All computation is exact on enumerable levels: evidence weights are the system's own discounted state
occupancy (default), restricted to the part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.grid import GridSpec, Level, feature_names
from mesascope.levels.tabular import TabularMDP
from mesascope.measures.goal_posterior import (
    DEFAULT_BETAS,
    DEFAULT_EXPLAIN_THRESHOLD,
    DEFAULT_LAPSES,
    GoalPosterior,
    candidate_q_values,
    posteriors_from_q,
    system_state_weights,
)
from mesascope.programs import cached_jit
from mesascope.types import MesascopeError

__all__ = [
    "DEFAULT_MIN_SHARE",
    "audit_shard_lines",
    "Context",
    "ShardTable",
    "context_labels",
    "distance_context",
    "fit_shards",
    "format_shards",
    "nearer_context",
    "scenario_shards",
    "scenario_context_labels",
    "steps_to_feature",
]

DEFAULT_MIN_SHARE = 0.02
"""A part of a context is fitted only when it holds at least this share of the evidence weight (2%):
a goal fitted to a handful of steps is not a finding."""

UNASSIGNED = -1


@dataclass(frozen=True)
class Context:
    """A declared partition of each level's states (SPEC.md section 4, shards).

    Attributes:
        name: Identifier, e.g. "cheese_distance".
        labels: Names of the parts, e.g. ("near", "far").
        description: One sentence saying what the parts are.
        assign: `(spec, level, tab) -> int32 [S]`, the part index of every state of one level
            (`-1` for states in no part; terminal states are excluded regardless). Must depend only on
            the level, never on the system.
    """

    name: str
    labels: tuple[str, ...]
    description: str
    assign: Callable[[GridSpec, Level, TabularMDP], jax.Array]


# Jitted: one program per level shape, shared by every context and scenario (op by op, the relaxation
# compiles some twenty small programs; integer ops, so the results are the same).
@cached_jit
def steps_to_feature(next_state: jax.Array, fires: jax.Array) -> jax.Array:
    """Fewest actions from each state until a transition that fires a feature: int32 `[S]`.

    `S + 1` where the feature can never fire (e.g. the terminal state). Computed by Bellman-Ford style
    relaxation `d(s) = min_a [1 if fires(s, a) else 1 + d(s')]`, which converges in at most `S` sweeps
    on a deterministic level.

    Args:
        next_state: int32 `[S, A]`.
        fires: bool `[S, A]`, the feature is nonzero on that transition.
    """
    s = next_state.shape[0]
    never = jnp.int32(s + 1)

    def sweep(d: jax.Array) -> jax.Array:
        via = jnp.where(fires, 1, 1 + d[next_state])
        return jnp.minimum(jnp.min(via, -1), never).astype(jnp.int32)

    def cond(carry):
        d, prev, i = carry
        return (i < s + 1) & jnp.any(d != prev)

    def body(carry):
        d, _, i = carry
        return sweep(d), d, i + 1

    d0 = jnp.full((s,), never, jnp.int32)
    d, _, _ = jax.lax.while_loop(cond, body, (sweep(d0), d0, jnp.int32(1)))
    return d


def _feature_index(spec_features: Sequence[str], feature: str) -> int:
    if feature not in spec_features:
        raise MesascopeError(
            f"context feature {feature!r} is not a feature of this level family; its features are: "
            f"{', '.join(spec_features)}"
        )
    return list(spec_features).index(feature)


def distance_context(feature: str, near: int, *, name: str | None = None) -> Context:
    """Near/far partition by the number of steps until `feature` can fire (e.g. reaching the cheese).

    A state is "near" when some sequence of at most `near` actions fires `feature`, "far" otherwise
    (including states from which it can never fire).

    Args:
        feature: A transition feature name of the level family (`mesascope.levels.grid.feature_names`).
        near: Largest number of steps that still counts as near (`>= 1`).
        name: Context name (default `"<feature>_distance"`).
    """
    if near < 1:
        raise MesascopeError(f"near must be at least 1 step; got {near}")

    def assign(spec: GridSpec, level: Level, tab: TabularMDP) -> jax.Array:
        k = _feature_index(feature_names(spec), feature)
        d = steps_to_feature(tab.next_state, tab.features[..., k] != 0)
        return jnp.where(d <= near, 0, 1).astype(jnp.int32)

    return Context(
        name=name or f"{feature}_distance",
        labels=("near", "far"),
        description=f"near: '{feature}' can be reached within {near} steps; far: it cannot",
        assign=assign,
    )


def nearer_context(first: str, second: str, *, name: str | None = None) -> Context:
    """Partition by which of two features is fewer steps away (ties count for `second`).

    Args:
        first, second: Transition feature names, e.g. "cheese" and "corner".
        name: Context name (default `"nearer_<first>_or_<second>"`).
    """

    def assign(spec: GridSpec, level: Level, tab: TabularMDP) -> jax.Array:
        names = feature_names(spec)
        ka, kb = _feature_index(names, first), _feature_index(names, second)
        da = steps_to_feature(tab.next_state, tab.features[..., ka] != 0)
        db = steps_to_feature(tab.next_state, tab.features[..., kb] != 0)
        return jnp.where(da < db, 0, 1).astype(jnp.int32)

    return Context(
        name=name or f"nearer_{first}_or_{second}",
        labels=(f"{first}_nearer", f"{second}_nearer"),
        description=f"which of '{first}' and '{second}' is fewer steps away (ties go to '{second}')",
        assign=assign,
    )


def context_labels(context: Context, spec: GridSpec, levels: Level, tab: TabularMDP) -> jax.Array:
    """Part index of every state of every level: int32 `[L, S]` (`-1` on terminal states)."""
    labels = jax.vmap(lambda lv, tb: context.assign(spec, lv, tb))(levels, tab)
    return jnp.where(tab.terminal, UNASSIGNED, labels).astype(jnp.int32)


@dataclass(frozen=True)
class ShardTable:
    """The goal posterior of one context's parts (SPEC.md section 4).

    Attributes:
        context: Context name.
        description: What the parts are.
        labels: `C` part names.
        fits: `C` entries, the part's `GoalPosterior`, or None where the part holds less than
            `min_share` of the evidence.
        share: float `[C]`, each part's share of the evidence weight (sums to 1 over assigned states).
        overall: The posterior over all parts together (what `goal_posterior` reports).
        min_share: The evidence share below which a part is not fitted.
    """

    context: str
    description: str
    labels: tuple[str, ...]
    fits: tuple[GoalPosterior | None, ...]
    share: np.ndarray
    overall: GoalPosterior
    min_share: float

    @property
    def shards(self) -> tuple[str, ...]:
        """Distinct best goals over the parts a goal explains, in the order of `labels`."""
        out: list[str] = []
        for fit in self.fits:
            if fit is not None and fit.explained and fit.best not in out:
                out.append(fit.best)
        return tuple(out)

    @property
    def drivers(self) -> dict[str, str | None]:
        """Part name -> the goal that drives behaviour there (None: no evidence or no goal explains it)."""
        return {
            label: (fit.best if fit is not None and fit.explained else None)
            for label, fit in zip(self.labels, self.fits)
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: per part the best goal, its posterior, fit quality and rationality."""
        parts = {}
        for label, fit, share in zip(self.labels, self.fits, self.share):
            entry: dict[str, Any] = {"share": float(share)}
            if fit is None:
                entry.update({"best": None, "explained": False, "note": "too little evidence to fit"})
            else:
                i = fit.names.index(fit.best)
                entry.update(
                    {
                        "best": fit.best,
                        "explained": fit.explained,
                        "posterior": float(fit.posterior[i]),
                        "posterior_per_step": float(fit.posterior_per_step[i]),
                        "fit_quality": float(fit.fit_quality[i]),
                        "beta": float(fit.beta[i]),
                        "lapse": float(fit.lapse[i]),
                        "n_steps": fit.n_steps,
                        "goals": fit.as_dict()["goals"],
                    }
                )
            parts[label] = entry
        return {
            "description": self.description,
            "parts": parts,
            "drivers": self.drivers,
            "shards": list(self.shards),
            "n_shards": len(self.shards),
            "overall_best": self.overall.best,
            "min_share": self.min_share,
        }


def _shard_tables(
    q: jax.Array,
    tab: TabularMDP,
    probs: jax.Array,
    weights: jax.Array,
    contexts: Sequence[tuple[str, str, Sequence[str], jax.Array]],
    *,
    names: Sequence[str],
    overall: GoalPosterior | None,
    betas: Sequence[float] | jax.Array,
    threshold: float,
    lapses: Sequence[float] | None,
    min_share: float,
) -> list[ShardTable]:
    """Every part of every context (and the overall posterior, unless given) fitted in one batched call.

    `contexts` holds `(name, description, label_names, labels [L, S])` per context.
    """
    # The parts are selected on the host (the same float32 weights, copied): a few small arrays, which as
    # device ops would each be a program to compile and a round trip.
    weights = np.where(np.asarray(tab.terminal), np.float32(0.0), np.asarray(weights, np.float32))
    wanted: list[np.ndarray] = [] if overall is not None else [weights]
    plan = []  # per context: per part, (share, index into `wanted` or None)
    for _, _, label_names, labels in contexts:
        labels = np.asarray(labels, np.int32)
        if labels.shape != weights.shape:
            raise ValueError(f"labels must have shape [L, S] = {weights.shape}, got {labels.shape}")
        total = float(np.where(labels >= 0, weights, 0.0).sum(dtype=np.float64))
        parts = []
        for c in range(len(label_names)):
            part = np.where(labels == c, weights, np.float32(0.0))
            share = float(part.sum(dtype=np.float64)) / total if total > 0 else 0.0
            if share < min_share or share == 0.0:
                parts.append((share, None))
            else:
                parts.append((share, len(wanted)))
                wanted.append(part)
        plan.append(parts)
    fits = (posteriors_from_q(q, tab.terminal, probs, np.stack(wanted), names=names, betas=betas, threshold=threshold,
                              lapses=lapses) if wanted else [])
    if overall is None:
        overall = fits[0]
    return [
        ShardTable(
            context=name,
            description=description,
            labels=tuple(label_names),
            fits=tuple(None if i is None else fits[i] for _, i in parts),
            share=np.asarray([share for share, _ in parts]),
            overall=overall,
            min_share=float(min_share),
        )
        for (name, description, label_names, _), parts in zip(contexts, plan)
    ]


def fit_shards(
    tab: TabularMDP,
    probs: jax.Array,
    labels: jax.Array,
    goal_weights: jax.Array,
    gamma: float,
    *,
    names: Sequence[str],
    label_names: Sequence[str],
    context: str = "context",
    description: str = "",
    state_weights: jax.Array | None = None,
    q: jax.Array | None = None,
    betas: Sequence[float] | jax.Array = DEFAULT_BETAS,
    threshold: float = DEFAULT_EXPLAIN_THRESHOLD,
    lapses: Sequence[float] | None = DEFAULT_LAPSES,
    min_share: float = DEFAULT_MIN_SHARE,
    reach: Sequence[bool] | None = None,
    overall: GoalPosterior | None = None,
) -> ShardTable:
    """Fit the Boltzmann-rational goal posterior separately on each part of a partition of the states.

    Args:
        tab: Tabular levels `[L, ...]`.
        probs: float32 `[L, S, A]`, the system's action probabilities.
        labels: int `[L, S]`, each state's part index in `[0, C)` (`-1`: in no part).
        goal_weights: float32 `[G, K]`, candidate goals.
        gamma: Discount.
        names: `G` goal names.
        label_names: `C` part names.
        context: Context name (for the record).
        description: What the parts are (for the record).
        state_weights: Optional float32 `[L, S]` evidence weights (default: the system's own discounted
            occupancy, `system_state_weights`).
        q: Optional float32 `[G, L, S, A]` precomputed `Q*` (`candidate_q_values`), to share one solve.
        betas, threshold, lapses: As in `goal_posterior`.
        min_share: Parts holding less than this share of the evidence are not fitted.
        reach: Optional bool `[G]`, reach goals (`Objective.reach`); used when `q` is not given.
        overall: The posterior over all states, if already fitted (it is then not fitted again).

    Returns:
        `ShardTable`.
    """
    probs = jnp.asarray(probs, jnp.float32)
    goal_weights = jnp.asarray(goal_weights, jnp.float32)
    if state_weights is None:
        state_weights = system_state_weights(tab, probs, gamma)
    if q is None:
        q = candidate_q_values(tab, goal_weights, gamma, reach=reach)
    return _shard_tables(q, tab, probs, state_weights, [(context, description, label_names, labels)], names=names,
                         overall=overall, betas=betas, threshold=threshold, lapses=lapses, min_share=min_share)[0]


def scenario_context_labels(scenario: Any, levels: Level, tab: TabularMDP) -> dict[str, jax.Array]:
    """Every declared context's part labels on these levels, `name -> int32 [L, S]`.

    They depend only on the levels (never on a system), so an audit computes them once per split.
    """
    return {ctx.name: context_labels(ctx, scenario.spec, levels, tab) for ctx in tuple(getattr(scenario, "contexts", ()) or ())}


def scenario_shards(
    scenario: Any,
    levels: Level,
    tab: TabularMDP,
    probs: jax.Array,
    *,
    q: jax.Array | None = None,
    state_weights: jax.Array | None = None,
    labels: Mapping[str, jax.Array] | None = None,
    overall: GoalPosterior | None = None,
    betas: Sequence[float] | jax.Array = DEFAULT_BETAS,
    threshold: float = DEFAULT_EXPLAIN_THRESHOLD,
    lapses: Sequence[float] | None = DEFAULT_LAPSES,
    min_share: float = DEFAULT_MIN_SHARE,
) -> dict[str, ShardTable]:
    """`fit_shards` for every context the scenario declares (`Scenario.contexts`), over its candidate goals.

    Every part of every context is fitted in one batched call.

    Args:
        scenario: A `mesascope.scenarios.base.Scenario`.
        levels: Its levels `[L]` (the contexts may read them).
        tab: Their tabular views `[L, ...]`.
        probs: float32 `[L, S, A]`.
        q: Optional precomputed `Q*` of the candidate goals `[G, L, S, A]`.
        state_weights: Optional evidence weights `[L, S]`.
        labels: Optional precomputed part labels per context (`scenario_context_labels`).
        overall: Optional posterior over all states, already fitted with the same weights.
        betas, threshold, lapses, min_share: As in `fit_shards`.

    Returns:
        Context name -> `ShardTable` (empty when the scenario declares no contexts).
    """
    contexts = tuple(getattr(scenario, "contexts", ()) or ())
    if not contexts:
        return {}
    goals = scenario.candidate_goals
    goal_w = jax.device_put(np.stack([g.vector(scenario.feature_names) for g in goals]))  # no program, as jnp.asarray
    names = tuple(g.name for g in goals)
    gamma = scenario.spec.gamma
    probs = jnp.asarray(probs, jnp.float32)
    if state_weights is None:
        state_weights = system_state_weights(tab, probs, gamma)
    if q is None:
        q = candidate_q_values(tab, goal_w, gamma, reach=[g.reach for g in goals])
    if labels is None:
        labels = scenario_context_labels(scenario, levels, tab)
    tables = _shard_tables(
        q, tab, probs, state_weights, [(ctx.name, ctx.description, ctx.labels, labels[ctx.name]) for ctx in contexts],
        names=names, overall=overall, betas=betas, threshold=threshold, lapses=lapses, min_share=min_share,
    )
    return {table.context: table for table in tables}


def format_shards(shards: Mapping[str, Mapping[str, Any]]) -> str:
    """Readable lines for one system's `shards` block of one split (the `as_dict` of each table).

    Example line: `cheese_distance: near -> cheese (post/step 0.71, +0.62 nats/step, 18% of steps);
    far -> corner (...) => 2 shards`.
    """
    lines = []
    for name, table in shards.items():
        parts = []
        for label, part in table["parts"].items():
            share = f"{100 * part['share']:.0f}% of steps"
            if part["best"] is None:
                parts.append(f"{label} -> (no fit: {share})")
                continue
            goal = part["best"] if part["explained"] else f"nothing (best {part['best']})"
            parts.append(
                f"{label} -> {goal} (post/step {part['posterior_per_step']:.2f}, "
                f"{part['fit_quality']:+.2f} nats/step, {share})"
            )
        n = table["n_shards"]
        lines.append(f"{name}: " + "; ".join(parts) + f" => {n} shard{'s' if n != 1 else ''}")
    return "\n".join(lines)


def audit_shard_lines(audit: Mapping[str, Any], split: str = "deploy") -> list[str]:
    """The shard tables of every system of an `audit.json` (one split), as lines for the terminal."""
    lines = []
    for system in audit.get("systems", []):
        block = (system.get("shards") or {}).get(split)
        if not block:
            continue
        text = format_shards(block).splitlines()
        lines.append(f"shards on {split}, seed {system.get('seed')}:")
        lines.extend(f"  {t}" for t in text)
    return lines
