"""Scenarios and the one registry every kind of scenario lives in (SPEC.md sections 1 and 8).

Every registered id names a *scenario record* that declares what it is and nothing more:

* its `kind`: `"gridworld"` (`Scenario`: a training and a deployment distribution of enumerable levels,
  audited exactly by dynamic programming) or `"study"` (`mesascope.scenarios.study.Study`: its own base
  optimizer and measurements, e.g. evolution or supervised learning);
* its parameters, typed and range-checked (`mesascope.params.Param`), with defaults;
* its expected finding, as prose and as a check function over the audit (`Finding`), with the
  configuration `mesascope reproduce` runs;
* for gridworld scenarios, optional declared hooks: the scenario's own exact measures
  (`ScenarioMeasure`), its mesa-optimizer class, and the contexts shards are fitted on.

Scenarios depend on levels, solve, measures and systems only: training, auditing, verdicts and run
folders belong to `mesascope.experiments`, which treats every kind the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jax
import numpy as np

from mesascope.levels.grid import GridSpec, Level, feature_names
from mesascope.params import Param, parse_values
from mesascope.programs import cached_jit
from mesascope.types import MesascopeError, Objective

__all__ = [
    "SPLITS",
    "Check",
    "Finding",
    "RunSpec",
    "Scenario",
    "ScenarioMeasure",
    "first_sentence",
    "get_scenario",
    "register",
    "registered_ids",
    "room_spec",
    "ALPHA_PARAM",
    "drawn_from_deploy",
    "scenario_ids",
    "stored_checks",
]

SPLITS = ("train", "deploy")


@dataclass(frozen=True)
class Check:
    """One part of an expected finding, measured (`mesascope reproduce` prints one row per check).

    Attributes:
        name: What is checked, e.g. `"corner reached first more often than chance"`.
        measured: The number (or label) the audit gave.
        expected: The condition, in words, e.g. `">= 1.5 x uniform (0.199)"`.
        holds: Whether the measured value meets it.
    """

    name: str
    measured: Any
    expected: str
    holds: bool

    def to_dict(self) -> dict[str, Any]:
        measured = self.measured
        if isinstance(measured, np.generic):
            measured = measured.item()
        return {"name": self.name, "measured": measured, "expected": self.expected, "holds": bool(self.holds)}


def stored_checks(audit: Mapping[str, Any]) -> list[Check]:
    """The checks a study computed with its measurements (`findings.checks`), as `Check`s.

    A study whose finding is about its own numbers (not about verdicts) checks them where it computes
    them; its `Finding.check` then reads them back from the audit with this.
    """
    return [Check(c["name"], c["measured"], c["expected"], bool(c["holds"])) for c in audit.get("findings", {}).get("checks", [])]


@dataclass(frozen=True)
class RunSpec:
    """The configuration `mesascope reproduce` runs a scenario's finding with.

    Attributes:
        seeds: Systems to train.
        preset: Training preset.
        params: Scenario parameters (`--param`).
        settings: Training settings (`--set`).
        audit_levels: Levels per split in the exact audit (gridworld scenarios).
    """

    seeds: int = 4
    preset: str = "fast"
    params: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    audit_levels: int = 256


@dataclass(frozen=True)
class Finding:
    """A scenario's expected finding: prose, a check over the audit, and how to reproduce it.

    Attributes:
        text: The finding, stated before running (the scenario's `expected_finding`).
        check: `(audit) -> checks`: reads a finished `audit.json` (as a dict) and measures each part of
            the finding. It must hold for the `fast` configuration on the 2-core machine, and it tests the
            finding, not one run's numbers.
        fast: The configuration CI reproduces (`mesascope reproduce --fast`, the default); None when the
            finding needs more training than the fast preset gives (it is then reproduced with `--full`
            only, and `--fast` lists it as skipped, with that reason).
        full: A longer configuration (`--full`), if the finding has one.
        also: More fast configurations, each with other parameter values (`RunSpec.params`): the finding
            stated for those values (the check is the one the scenario builds for them) is reproduced too.
    """

    text: str
    check: Callable[[Mapping[str, Any]], Sequence[Check]]
    fast: RunSpec | None = RunSpec()
    full: RunSpec | None = None
    also: tuple[RunSpec, ...] = ()


@dataclass(frozen=True)
class ScenarioMeasure:
    """An exact measure a scenario's finding rests on, computed by every audit for every system.

    A *policy* measure (`of_policy`) is computed for each trained system and for the uniform-random
    baseline; a *level* measure (`of_levels`) does not depend on any system (e.g. what every base-optimal
    policy does) and is computed once per split. Either returns one value per level; the audit reports
    the mean over the audited levels (`audit.json` `scenario_measures`).

    Attributes:
        name: Key in audit.json, e.g. `"hoarding_probability"`.
        description: One sentence: what it is and how it is computed.
        of_policy: `(scenario, levels, tab, probs [L, S, A]) -> float [L]`.
        of_levels: `(scenario, levels, tab) -> float [L]`.
        splits: The splits it is computed on.
    """

    name: str
    description: str
    of_policy: Callable[..., Any] | None = None
    of_levels: Callable[..., Any] | None = None
    splits: tuple[str, ...] = SPLITS

    def __post_init__(self) -> None:
        if (self.of_policy is None) == (self.of_levels is None):
            raise ValueError(f"scenario measure {self.name!r}: give exactly one of of_policy and of_levels")


@dataclass(frozen=True)
class Scenario:
    """A gridworld scenario: an argument from the literature made runnable on enumerable levels.

    Attributes:
        description: One paragraph: what the levels look like and which paper it comes from.
        expected_finding: What a run should show, stated before running it.
        spec: Static shape of every level (train and deploy share it).
        make_level: `(key, split) -> Level`, one seeded level from `D_train` or `D_deploy`.
        base_objective: What the base optimizer scores systems with on `D_train`.
        intended_objective: What the designers actually want.
        candidate_goals: The hypothesis class for behavioral objectives (SPEC.md section 4).
        optimizer: The base optimizer and system it trains: "ppo" (a neural policy) or "mesa-<method>" (an
            explicit mesa-optimizer whose objective is learned; `mesascope.experiments.train`).
        contexts: Declared partitions of each level's states (`mesascope.measures.shards.Context`) over
            which the audit fits the behavioral objective separately (shards, SPEC.md section 4).
        measures: The scenario's own exact measures, computed by every audit (`ScenarioMeasure`).
        mutate: `(key, level) -> level`, one small edit of a training level that keeps it a valid,
            solvable level of the family (ACCEL's edits, `mesascope.optimizers.curricula`); None when the
            scenario declares none.
        mesa_system: The mesa-optimizer class its `mesa-*` optimizers train (default
            `mesascope.systems.mesa.MesaOptimizer`).
        finding: The expected finding as a check, with its reproduction configuration.
        id: Versioned registry id, e.g. "cheese-corner-v0" (set by the registry).
        summary: One line for `mesascope list` (set by the registry).
        params: The parameter values this scenario was built with (set by the registry).
        param_specs: Its declared parameters (set by the registry).
        factory: Rebuilds it with other parameter values, checked (set by the registry; `with_params`).
    """

    kind: ClassVar[str] = "gridworld"

    description: str
    expected_finding: str
    spec: GridSpec
    make_level: Callable[[jax.Array, str], Level]
    base_objective: Objective
    intended_objective: Objective
    candidate_goals: tuple[Objective, ...]
    optimizer: str = "ppo"
    contexts: tuple[Any, ...] = ()
    measures: tuple[ScenarioMeasure, ...] = ()
    mutate: Callable[[jax.Array, Level], Level] | None = None
    mesa_system: type | None = None
    finding: Finding | None = None
    id: str = ""
    summary: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    param_specs: tuple[Param, ...] = ()
    factory: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return feature_names(self.spec)

    def objectives(self) -> dict[str, Objective]:
        """Every objective a run scores: `base`, `intended`, then each candidate goal by name."""
        out = {"base": self.base_objective, "intended": self.intended_objective}
        for goal in self.candidate_goals:
            out[goal.name] = goal
        return out

    def weight_matrix(self) -> tuple[tuple[str, ...], np.ndarray]:
        """Names and float32 `[O, K]` weights of `objectives()`, in that order."""
        objs = self.objectives()
        return tuple(objs), np.stack([o.vector(self.feature_names) for o in objs.values()])

    def reach_mask(self) -> np.ndarray:
        """bool `[O]`: which of `objectives()` are reach goals (`Objective.reach`), in that order."""
        return np.array([o.reach for o in self.objectives().values()], bool)

    def sample_levels(self, key: jax.Array, n: int, split: str) -> Level:
        """`n` seeded levels of one split, batched with a leading `[n]` axis."""
        if split not in SPLITS:
            raise MesascopeError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        return _sampler(self.make_level, split)(jax.random.split(key, n))

    def with_params(self, **params: Any) -> Any:
        """The same scenario with some parameters changed, checked against their declarations.

        Raises:
            MesascopeError: on an unknown parameter or a value of the wrong type or out of range.
        """
        return _with_params(self, params)


def room_spec(room: int, max_steps: int, *, min_steps: int | None = None, why: str = "so every square is reachable",
              gamma: float = 0.99, **fields: Any) -> GridSpec:
    """The `GridSpec` of an open `room` x `room` room inside a wall border (most gridworld scenarios).

    Args:
        room: Side of the open room; the grid is `room + 2` square.
        max_steps: Episode limit.
        min_steps: The least `max_steps` the scenario makes sense with (default `2 * room`); `why` says why.
        gamma: Discount.
        **fields: The other `GridSpec` fields (objects, kinds, regions...).

    Raises:
        MesascopeError: when `max_steps < min_steps`.
    """
    least = 2 * room if min_steps is None else min_steps
    if max_steps < least:
        raise MesascopeError(f"max_steps must be at least {least} ({why}); got {max_steps}")
    return GridSpec(height=room + 2, width=room + 2, gamma=gamma, max_steps=max_steps, **fields)


ALPHA_PARAM = Param(
    "alpha", "float", 0.0,
    "share of training levels drawn from the deployment distribution (domain randomisation; 0 = none)",
    low=0.0, high=1.0,
)
"""The remedy of Langosco et al. 2022 as a scenario parameter, so `mesascope sweep --param alpha=...` is one command."""

ALPHA_SALT = 0xA1FA
"""Folded into a level's key for the alpha draw, so the level's other draws (and every level at alpha 0) do not move."""


def drawn_from_deploy(key: jax.Array, split: str, alpha: float) -> bool | jax.Array:
    """Whether a level follows the deployment distribution: every deploy level, a share `alpha` of train levels.

    Args:
        key: The level's key (the draw uses `fold_in(key, ALPHA_SALT)`, leaving the key's other uses alone).
        split: "train" or "deploy".
        alpha: `ALPHA_PARAM`'s value.

    Returns:
        A scalar bool for `jnp.where`: a constant where the answer is fixed (deploy, or alpha 0 or 1, which
        draw nothing), else the draw.
    """
    if split == "deploy" or alpha >= 1.0:
        return True
    if alpha <= 0.0:
        return False
    return jax.random.bernoulli(jax.random.fold_in(key, ALPHA_SALT), alpha)


def first_sentence(text: str, limit: int = 110) -> str:
    """The first sentence of `text`, cut at `limit` characters."""
    head = text.split(". ")[0].strip().rstrip(".") + "."
    return head if len(head) <= limit else head[: limit - 3].rstrip() + "..."


def _with_params(record: Any, params: Mapping[str, Any]) -> Any:
    if record.factory is None:
        raise MesascopeError(f"scenario {record.id!r} is not registered, so it cannot be rebuilt with other parameters")
    return record.factory(**{**record.params, **params})


_SAMPLERS: dict[Any, Callable[[jax.Array], Level]] = {}


def _sampler(make_level: Callable[[jax.Array, str], Level], split: str) -> Callable[[jax.Array], Level]:
    """One compiled, vmapped level generator per (generator, arguments, split).

    Scenarios are rebuilt on every `get_scenario` call, so a `functools.partial` generator is keyed by
    its function and frozen arguments, not by identity; otherwise every call would recompile. A built-in
    generator's program is also saved across processes (`mesascope.programs.cached_jit`): its source is
    covered by the saved programs' fingerprint, so its function's name, frozen arguments and split
    describe the program. A generator defined elsewhere is plain `jax.jit`.
    """
    program_key = None
    if isinstance(make_level, functools.partial):
        func, frozen = make_level.func, (make_level.args, tuple(sorted(make_level.keywords.items())))
        key: Any = (func, *frozen, split)
        if getattr(func, "__module__", "").startswith("mesascope."):
            program_key = ("level-generator", func.__module__, func.__qualname__, *frozen, split)
    else:
        key = (make_level, split)
    if key not in _SAMPLERS:
        generator = jax.vmap(lambda k: make_level(k, split))
        _SAMPLERS[key] = jax.jit(generator) if program_key is None else cached_jit(generator, key=program_key)
    return _SAMPLERS[key]


@dataclass(frozen=True)
class _Entry:
    """One registered id: the builder, its declared parameters (with this id's defaults) and fixed arguments."""

    id: str
    build: Callable[..., Any]
    params: tuple[Param, ...]
    fixed: Mapping[str, Any]
    summary: str

    def make(self, given: Mapping[str, Any]) -> Any:
        values = parse_values(self.params, given, owner=self.id)
        record = self.build(**self.fixed, **values)
        return dataclasses.replace(record, id=self.id, summary=self.summary or first_sentence(record.description),
                                   params=values, param_specs=self.params, factory=lambda **kw: self.make(kw))


_REGISTRY: dict[str, _Entry] = {}


def register(
    scenario_id: str,
    build: Callable[..., Any],
    params: Sequence[Param] = (),
    *,
    defaults: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    summary: str = "",
) -> None:
    """Register a scenario (gridworld or study) under a versioned id.

    Args:
        scenario_id: E.g. `"cheese-corner-region3-v0"`.
        build: `(**fixed, **params) -> Scenario | Study`; receives checked parameter values.
        params: The declared parameters.
        defaults: This id's defaults for some of them (e.g. `region=3`).
        fixed: Builder arguments that are not user parameters (e.g. the optimizer of a variant).
        summary: One line for `mesascope list` (default: the description's first sentence).

    Raises:
        ValueError: if the id is taken, or a default names an undeclared parameter.
    """
    if scenario_id in _REGISTRY:
        raise ValueError(f"scenario id {scenario_id!r} is registered twice")
    declared = {p.name: p for p in params}
    defaults = dict(defaults or {})
    unknown = sorted(set(defaults) - set(declared))
    if unknown:
        raise ValueError(f"{scenario_id}: defaults for undeclared parameter(s) {unknown}")
    specs = tuple(dataclasses.replace(p, default=p.parse(defaults[p.name], scenario_id)) if p.name in defaults else p
                  for p in params)
    _REGISTRY[scenario_id] = _Entry(scenario_id, build, specs, dict(fixed or {}), summary)


def scenario_ids(kind: str | None = None) -> list[str]:
    """Every registered id, sorted; with `kind` (`"gridworld"`, `"study"`) only those of that kind."""
    if kind is None:
        return sorted(_REGISTRY)
    return sorted(sid for sid in _REGISTRY if get_scenario(sid).kind == kind)


def registered_ids() -> list[str]:
    """The gridworld scenario ids (`scenario_ids("gridworld")`: what the Gymnasium adapter and the
    conformance suite iterate over)."""
    return scenario_ids("gridworld")


def get_scenario(scenario_id: str, **params: Any) -> Any:
    """The scenario registered under `scenario_id`, built with its defaults and any `params` (checked).

    Raises:
        MesascopeError: naming the closest ids and listing every valid one, or naming a bad parameter.
    """
    try:
        entry = _REGISTRY[scenario_id]
    except KeyError:
        every = sorted(_REGISTRY)
        close = difflib.get_close_matches(scenario_id, every, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise MesascopeError(f"unknown scenario {scenario_id!r}.{hint} Valid scenarios: {', '.join(every)}") from None
    return entry.make(params)
