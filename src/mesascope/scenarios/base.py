"""Scenarios: a training and a deployment distribution of levels with their objectives (SPEC.md §1)."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from mesascope.levels.grid import GridSpec, Level, feature_names
from mesascope.types import MesascopeError, Objective

__all__ = ["SPLITS", "Scenario", "get_scenario", "register", "registered_ids"]

SPLITS = ("train", "deploy")


@dataclass(frozen=True)
class Scenario:
    """An argument from the literature made runnable.

    Attributes:
        id: Versioned registry id, e.g. "cheese-corner-v0".
        description: One paragraph: what the levels look like and which paper it comes from.
        expected_finding: What a run should show, stated before running it.
        spec: Static shape of every level (train and deploy share it).
        make_level: `(key, split) -> Level`, one seeded level from `D_train` or `D_deploy`.
        base_objective: What the base optimizer scores systems with on `D_train`.
        intended_objective: What the designers actually want.
        candidate_goals: The hypothesis class for behavioral objectives (SPEC.md section 4).
        params: The parameter values this scenario was built with (for variants and sweeps).
        factory: Rebuilds the scenario with other parameters (`with_params`).
        optimizer: The base optimizer and system it uses by default: "ppo" (a neural policy),
            "mesa-gradient" or "mesa-evolution" (an explicit mesa-optimizer whose objective is learned).
        contexts: Declared partitions of each level's states (`mesascope.measures.shards.Context`) over
            which the audit fits the behavioral objective separately (shards, SPEC.md section 4).
    """

    id: str
    description: str
    expected_finding: str
    spec: GridSpec
    make_level: Callable[[jax.Array, str], Level]
    base_objective: Objective
    intended_objective: Objective
    candidate_goals: tuple[Objective, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    factory: Callable[..., Scenario] | None = None
    optimizer: str = "ppo"
    contexts: tuple[Any, ...] = ()

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

    def with_params(self, **params: Any) -> Scenario:
        """The same scenario family with some parameters changed (raises on unknown names)."""
        unknown = sorted(set(params) - set(self.params))
        if unknown or self.factory is None:
            raise MesascopeError(
                f"scenario {self.id!r} has no parameter(s) {unknown or list(params)}; "
                f"its parameters are: {', '.join(self.params) or 'none'}"
            )
        return self.factory(**{**self.params, **params})


_SAMPLERS: dict[Any, Callable[[jax.Array], Level]] = {}


def _sampler(make_level: Callable[[jax.Array, str], Level], split: str) -> Callable[[jax.Array], Level]:
    """One compiled, vmapped level generator per (generator, arguments, split).

    Scenarios are rebuilt on every `get_scenario` call, so a `functools.partial` generator is keyed by
    its function and frozen arguments, not by identity; otherwise every call would recompile.
    """
    if isinstance(make_level, functools.partial):
        key: Any = (make_level.func, make_level.args, tuple(sorted(make_level.keywords.items())), split)
    else:
        key = (make_level, split)
    if key not in _SAMPLERS:
        _SAMPLERS[key] = jax.jit(jax.vmap(lambda k: make_level(k, split)))
    return _SAMPLERS[key]


_REGISTRY: dict[str, Callable[[], Scenario]] = {}


def register(scenario_id: str, build: Callable[[], Scenario]) -> None:
    """Register a scenario factory under a versioned id (studies share the namespace)."""
    from mesascope.scenarios.study import is_study

    if scenario_id in _REGISTRY or is_study(scenario_id):
        raise ValueError(f"scenario id {scenario_id!r} is registered twice")
    _REGISTRY[scenario_id] = build


def registered_ids() -> list[str]:
    """All registered scenario ids, sorted."""
    return sorted(_REGISTRY)


def get_scenario(scenario_id: str) -> Scenario:
    """The scenario registered under `scenario_id`.

    Raises:
        MesascopeError: naming the closest ids and listing every valid one.
    """
    try:
        build = _REGISTRY[scenario_id]
    except KeyError:
        from mesascope.scenarios.study import is_study, study_ids

        if is_study(scenario_id):
            raise MesascopeError(
                f"{scenario_id!r} is a study, not a gridworld scenario; run it with `mesascope run {scenario_id}` "
                "or load it with mesascope.scenarios.study.get_study"
            ) from None
        every = sorted([*_REGISTRY, *study_ids()])
        close = difflib.get_close_matches(scenario_id, every, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise MesascopeError(f"unknown scenario {scenario_id!r}.{hint} Valid scenarios: {', '.join(every)}") from None
    return build()
