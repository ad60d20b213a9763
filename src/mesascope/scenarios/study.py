"""Studies: scenarios whose base optimizer is not RL on gridworld levels (SPEC.md section 8).

A gridworld `Scenario` is a level generator audited by dynamic programming. The seeds also argue with
examples whose base optimizer is evolution, plain gradient descent, supervised learning or a search
against a learned grader. Each of those is a `Study`: a seeded experiment with its own base optimizer
that *measures*: `execute(ctx)` trains, computes the study's numbers and returns a `StudyOutcome` (one
`Measurements` per system, measured variants, findings and figures as data). It never judges and never
writes: `mesascope.experiments` applies thresholds, properties, graphs and verdicts, draws the figures and
writes the run folder, as for every other scenario.

Studies register in the one scenario registry (`mesascope.scenarios.base.register`), with typed
parameters and typed training settings per preset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mesascope.measures.measurements import Measurements
from mesascope.params import Param, ParamError, parse_values
from mesascope.scenarios.base import Check, Finding, RunSpec, _with_params, register

__all__ = ["Study", "StudyContext", "StudyOutcome", "StudySystem", "jsonable", "register_study"]


@dataclass(frozen=True)
class StudyContext:
    """Everything `Study.execute` needs for one run.

    Attributes:
        seeds: Seeds `0..N-1`; each seeds one replicate (a population, a training run...).
        preset: "fast" or "full".
        config: The preset's settings with `--set` overrides applied (checked).
        params: The study's parameters (checked).
        progress: `progress(stage, fraction)` for the CLI's progress bar.
    """

    seeds: tuple[int, ...]
    preset: str
    config: Mapping[str, Any]
    params: Mapping[str, Any]
    progress: Callable[[str, float], None] = lambda stage, frac: None


@dataclass(frozen=True)
class StudySystem:
    """One measured system of a study.

    Attributes:
        seed: The seed that produced it.
        measurements: Its `Measurements` (SPEC.md sections 5 and 7 read nothing else).
        name: For a variant (the same system measured in another situation), what it is, e.g.
            `"birth control"`; `""` for the run's systems themselves.
        extra: More JSON-ready numbers for its audit.json block.
    """

    seed: int
    measurements: Measurements
    name: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyOutcome:
    """What a study measured.

    Attributes:
        systems: One per seed: the run's systems (audit.json `systems`).
        findings: The study's numbers and `tables` (JSON-ready; audit.json `findings`).
        variants: Systems measured in other situations, judged like the systems (audit.json `variants`).
        figures: name -> `draw(fig)` (matplotlib), drawn by the harness to `plots/<name>.png`.
    """

    systems: tuple[StudySystem, ...]
    findings: Mapping[str, Any]
    variants: tuple[StudySystem, ...] = ()
    figures: Mapping[str, Callable[[Any], None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    """A non-gridworld scenario: a real base optimizer, a measurement and its expected finding.

    Attributes:
        description: What is optimised, by what, and which seed or paper it comes from.
        expected_finding: What a run should show, stated before running it.
        optimizer: The base optimizer, e.g. "evolution", "gradient-descent", "best-of-n".
        settings: The training settings, typed (`--set NAME=VALUE`).
        presets: Values of the settings per preset name ("fast" must finish in about 2 minutes on 2 CPU
            cores).
        execute: `(StudyContext) -> StudyOutcome`.
        finding: The expected finding as a check over the audit, with its reproduction configuration.
        id, summary, params, param_specs, factory: Set by the registry, as for `Scenario`.
        candidate_goals: Always empty (a study has no gridworld candidate goals).
    """

    kind: ClassVar[str] = "study"

    description: str
    expected_finding: str
    optimizer: str
    settings: tuple[Param, ...]
    presets: Mapping[str, Mapping[str, Any]]
    execute: Callable[[StudyContext], StudyOutcome]
    finding: Finding | None = None
    candidate_goals: tuple[Any, ...] = ()
    id: str = ""
    summary: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    param_specs: tuple[Param, ...] = ()
    factory: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def config(self, preset: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The preset's settings with `overrides` applied, each checked against its declaration.

        Raises:
            ParamError: on an unknown preset, an unknown setting or a bad value (naming type and range).
        """
        if preset not in self.presets:
            raise ParamError(f"unknown preset {preset!r} for {self.id}; choose one of: {', '.join(self.presets)}")
        base = parse_values(self.settings, self.presets[preset], owner=self.id, what="setting", fill=False)
        return {**base, **parse_values(self.settings, overrides, owner=self.id, what="setting", fill=False)}

    def with_params(self, **params: Any) -> Study:
        """The same study with some parameters changed, checked against their declarations."""
        return _with_params(self, params)


def register_study(
    scenario_id: str,
    *,
    description: str,
    expected_finding: str,
    optimizer: str,
    settings: tuple[Param, ...],
    full: Mapping[str, Any],
    execute: Callable[[StudyContext], StudyOutcome],
    check: Callable[[Mapping[str, Any]], list[Check]],
    params: tuple[Param, ...] = (),
    summary: str = "",
) -> None:
    """Register a study under `scenario_id` in the one scenario registry.

    The `fast` preset is the settings' defaults; `full` changes some of them. The expected finding is
    checked by `check` on every audit and reproduced on four seeds with each preset (`mesascope reproduce`,
    `--full`). Its parameters (`params`) reach `execute` through `StudyContext.params`.
    """
    fast = {p.name: list(p.default) if isinstance(p.default, tuple) else p.default for p in settings}
    study = Study(description, expected_finding, optimizer, settings, {"fast": fast, "full": {**fast, **full}}, execute,
                  Finding(expected_finding, check, RunSpec(seeds=4), RunSpec(seeds=4, preset="full")))
    register(scenario_id, lambda **_: study, params, summary=summary)


def jsonable(x: Any) -> Any:
    """Numpy/JAX scalars and arrays to plain Python, recursively (for json.dumps)."""
    import numpy as np

    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        arr = np.asarray(x)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x
