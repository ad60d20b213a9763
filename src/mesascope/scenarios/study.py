"""Studies: registered scenarios whose base optimizer is not RL on gridworld levels (SPEC.md §8).

A gridworld `Scenario` is a level generator audited by dynamic programming. The seeds also argue with
examples whose base optimizer is evolution, plain gradient descent, supervised learning or a search
against a learned grader. Each of those is a `Study`: a self-contained, seeded experiment with its own
base optimizer, stated expected finding, and an `execute` function that trains, measures and checks.

Studies share the scenario registry's namespace (`mesascope list`, `mesascope run ID`) and the run
folder layout (`run.json` first, then `audit.json`), but are kept out of `registered_ids()`, which
lists only gridworld scenarios (the conformance checker and the Gymnasium adapter iterate over it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesascope.types import MesascopeError

__all__ = ["Study", "StudyContext", "get_study", "is_study", "register_study", "study_ids"]


@dataclass(frozen=True)
class StudyContext:
    """Everything `Study.execute` needs for one run.

    Attributes:
        seeds: Seeds `0..N-1`; each seeds one replicate (a population, a training run...).
        preset: "fast" or "full".
        config: The preset's settings with `--set` overrides applied.
        params: The study's parameters with `--param` overrides applied.
        out: The run folder (already holds `run.json`); plots go here.
        progress: `progress(stage, fraction)` for the CLI's progress bar.
        thresholds: Every threshold (`mesascope.properties.Thresholds`), as the user set them: every
            verdict the study computes must use these.
    """

    seeds: tuple[int, ...]
    preset: str
    config: Mapping[str, Any]
    params: Mapping[str, Any]
    out: Path
    progress: Callable[[str, float], None]
    thresholds: Any = None


@dataclass(frozen=True)
class Study:
    """A non-gridworld scenario: a real base optimizer, a measurement and its expected finding.

    Attributes:
        id: Versioned registry id, e.g. "greedy-genes-v0".
        description: What is optimised, by what, and which seed or paper it comes from.
        expected_finding: What a run should show, stated before running it.
        optimizer: The base optimizer, e.g. "evolution", "gradient-descent", "best-of-n".
        presets: Settings per preset name ("fast" must finish in about 2 minutes on 2 CPU cores).
        params: Scenario parameters and their defaults (`--param NAME=VALUE`).
        execute: `(StudyContext) -> dict` returning at least `findings` (with a `checks` list of
            `{"name", "measured", "expected", "holds"}`), and optionally `systems` (per-system blocks
            in the layout of notes/schema.md: `measurements`, `properties`, `verdicts`).
        candidate_goals: Always empty (a study has no gridworld candidate goals); present so that code
            listing scenarios can read the attribute from both kinds.
    """

    id: str
    description: str
    expected_finding: str
    optimizer: str
    presets: Mapping[str, Mapping[str, Any]]
    params: Mapping[str, Any]
    execute: Callable[[StudyContext], dict[str, Any]]
    candidate_goals: tuple[Any, ...] = field(default=())

    def resolve(self, preset: str, overrides: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[dict, dict]:
        """The effective (config, params) of a run.

        Raises:
            MesascopeError: on an unknown preset, setting or parameter, naming the valid ones.
        """
        if preset not in self.presets:
            raise MesascopeError(f"unknown preset {preset!r} for {self.id}; choose one of: {', '.join(self.presets)}")
        config = dict(self.presets[preset])
        bad = sorted(set(overrides) - set(config))
        if bad:
            raise MesascopeError(
                f"{self.id} has no training setting(s) {bad}; its settings are: {', '.join(sorted(config))}"
            )
        bad = sorted(set(params) - set(self.params))
        if bad:
            raise MesascopeError(
                f"{self.id} has no parameter(s) {bad}; its parameters are: {', '.join(sorted(self.params)) or 'none'}"
            )
        return {**config, **overrides}, {**self.params, **params}


_STUDIES: dict[str, Callable[[], Study]] = {}


def register_study(study_id: str, build: Callable[[], Study]) -> None:
    """Register a study factory under a versioned id (shares the namespace of gridworld scenarios)."""
    from mesascope.scenarios.base import _REGISTRY

    if study_id in _STUDIES or study_id in _REGISTRY:
        raise ValueError(f"scenario id {study_id!r} is registered twice")
    _STUDIES[study_id] = build


def study_ids() -> list[str]:
    """All registered study ids, sorted."""
    return sorted(_STUDIES)


def is_study(scenario_id: str) -> bool:
    """Whether `scenario_id` names a study (rather than a gridworld scenario)."""
    return scenario_id in _STUDIES


def get_study(study_id: str) -> Study:
    """The study registered under `study_id`.

    Raises:
        MesascopeError: if no study has that id.
    """
    if study_id not in _STUDIES:
        raise MesascopeError(f"unknown study {study_id!r}; studies: {', '.join(study_ids())}")
    return _STUDIES[study_id]()
