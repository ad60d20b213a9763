"""The one run path: from `mesascope run ID` to a finished run folder, for every kind of scenario.

`plan_run` resolves and checks everything a run needs (the scenario and its parameters, the preset, the
training settings, the seed count) **before anything is written**; `run` then writes the run folder in
this order, so that a failure later never loses what finished:

* `run.json`: scenario, kind, parameters, preset, configuration, seeds, thresholds (before training);
* the trained systems: `systems/` and `training.npz` (gridworld: `mesascope.experiments.train`), or the
  study's measurements and figures (`plots/`; `mesascope.experiments.study`);
* `audit.json`: every system's measurements, properties, graphs, verdicts and invariants under the given
  thresholds, the scenario's own measures, and the expected finding's checks (`finding`);
* pictures and graph drawings (`pictures/`, `graphs/`).

`mesascope audit RUN_DIR` repeats the last two steps from the saved systems (`rejudge`) without retraining.
"""

from __future__ import annotations


import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mesascope import __version__
from mesascope.experiments.audit import AUDIT_SEED, AuditConfig, ProgressFn, audit_run
from mesascope.experiments.profiling import NULL_TIMER, StageTimer
from mesascope.experiments.train import TrainedSystem, get_trainer
from mesascope.properties import Thresholds
from mesascope.scenarios import get_scenario
from mesascope.scenarios.base import Check
from mesascope.scenarios.study import jsonable
from mesascope.types import MesascopeError, error_line

__all__ = [
    "AUDIT_SEED",
    "AuditConfig",
    "RunPlan",
    "apply_finding",
    "load_run",
    "load_systems",
    "plan_run",
    "rejudge",
    "run",
]


def _noop(stage: str, frac: float) -> None:
    return None


@dataclass(frozen=True)
class RunPlan:
    """A run, resolved and checked before anything is written.

    Attributes:
        scenario_id: The registered id.
        scenario: The scenario record (`Scenario` or `Study`) built with `params`.
        params: The parameters the user gave, checked (run.json `scenario_params`).
        preset: The training preset.
        seeds: Seeds `0..N-1`.
        config: The training configuration: a trainer's config object (gridworld) or the study's
            checked settings.
        config_json: The same as stored in run.json `config`.
    """

    scenario_id: str
    scenario: Any
    params: Mapping[str, Any]
    preset: str
    seeds: tuple[int, ...]
    config: Any
    config_json: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.scenario.kind

    @property
    def optimizer(self) -> str:
        return self.scenario.optimizer

    def meta(self, thresholds: Thresholds) -> dict[str, Any]:
        """run.json."""
        return jsonable({
            "mesascope_version": __version__,
            "kind": self.kind,
            "scenario": self.scenario_id,
            "scenario_params": dict(self.params),
            "params": dict(self.scenario.params),
            "preset": self.preset,
            "optimizer": self.optimizer,
            "seeds": list(self.seeds),
            "config": dict(self.config_json),
            "thresholds": thresholds.to_dict(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })


def plan_run(
    scenario_id: str,
    *,
    seeds: int = 4,
    preset: str = "fast",
    overrides: Mapping[str, Any] | None = None,
    scenario_params: Mapping[str, Any] | None = None,
) -> RunPlan:
    """Resolve and check a run (writes nothing).

    Raises:
        MesascopeError: on an unknown scenario, parameter, preset or setting, a value of the wrong type or
            out of range (naming it, its type and its range), or a seed count below 1.
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise MesascopeError(f"--seeds must be at least 1; got {seeds}")
    scenario = get_scenario(scenario_id, **dict(scenario_params or {}))
    given = {k: scenario.params[k] for k in (scenario_params or {})}
    overrides = dict(overrides or {})
    if scenario.kind == "study":
        config = scenario.config(preset, overrides)
        return RunPlan(scenario_id, scenario, given, preset, tuple(range(seeds)), config, config)
    trainer = get_trainer(scenario.optimizer)
    config = trainer.config(preset, overrides)
    spec = getattr(scenario, "spec", None)
    if "gamma" not in overrides and hasattr(config, "gamma") and spec is not None and config.gamma != spec.gamma:
        # PPO discounts as the scenario does unless told otherwise (`--param gamma=` alone must not train
        # for a different objective than the one the audit solves).
        config = replace(config, gamma=spec.gamma)
    if getattr(config, "curriculum", None) == "accel" and scenario.mutate is None:
        raise MesascopeError(f"--set curriculum=accel edits training levels, and {scenario_id} declares no edits "
                             "(Scenario.mutate); choose dr, plr or exact-plr")
    return RunPlan(scenario_id, scenario, given, preset, tuple(range(seeds)), config, trainer.to_json(config))


RunEvents = Callable[[str, Path, dict[str, Any]], None]
"""`events(stage, run_dir, data)`: hears a run's progress (see `run`)."""


def _no_events(stage: str, run_dir: Path, data: dict[str, Any]) -> None:
    return None


def apply_finding(scenario: Any, audit: dict[str, Any]) -> dict[str, Any]:
    """Check the scenario's expected finding on a finished audit; adds `finding` (and `finding_holds`).

    The check reads the audit only. A check that raises (an audit too small for it, say) is recorded as
    one failing check with the error, never lost: the audit itself is already complete.

    Returns:
        `{"holds": bool, "checks": [...]}` (also stored in `audit["finding"]`); `holds` is None when the
        scenario states no checkable finding.
    """
    finding = getattr(scenario, "finding", None)
    if finding is None:
        block: dict[str, Any] = {"holds": None, "checks": [], "note": "this scenario states no checkable finding"}
    else:
        try:
            checks = list(finding.check(audit))
        except Exception as err:  # noqa: BLE001 - reported in the audit, never fatal
            checks = [Check("the finding's check ran", error_line(err), "no error", False)]
        block = {"holds": bool(checks) and all(c.holds for c in checks), "checks": [jsonable(c.to_dict()) for c in checks]}
    audit["finding"] = block
    audit["finding_holds"] = block["holds"]
    return block


def _write_meta(out: Path, meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if (out / "run.json").exists():
        raise MesascopeError(f"{out} already holds a run; choose another --out folder or delete it")
    (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")


def run(
    scenario_id: str,
    *,
    seeds: int = 4,
    preset: str = "fast",
    out: Path,
    audit: AuditConfig = AuditConfig(),
    overrides: dict[str, Any] | None = None,
    scenario_params: dict[str, Any] | None = None,
    progress: ProgressFn = _noop,
    thresholds: Thresholds = Thresholds(),
    events: RunEvents | None = None,
    timer: StageTimer = NULL_TIMER,
) -> dict[str, Any]:
    """Train `seeds` systems on a scenario and audit them; everything lands in `out`.

    The same path serves every kind: a gridworld scenario's base optimizer trains systems that the exact
    audit measures; a study executes its own base optimizer and measurements. Either way the harness
    applies `thresholds`, properties, graphs, verdicts and the expected finding's check, and writes the
    same files.

    `events(stage, out, data)`, if given, hears "started" (run.json written), "trained" (systems
    saved), "audited" (audit.json written), then "complete", or "failed" with `{"error": ...}`; the
    result store (`mesascope.experiments.store.recorder`) records the run through it. `timer`
    (`--profile`) collects wall time per stage into `audit.json`'s `timings`.

    Raises:
        MesascopeError: on a bad scenario id, parameter, preset, setting, seed count or output folder,
            before anything is written.
    """
    if audit.n_train < 1 or audit.n_deploy < 1:
        raise MesascopeError(f"--audit-levels must be at least 1; got {min(audit.n_train, audit.n_deploy)}")
    plan = plan_run(scenario_id, seeds=seeds, preset=preset, overrides=overrides, scenario_params=scenario_params)
    meta = plan.meta(thresholds)

    def produce(emit: RunEvents) -> dict[str, Any]:
        if plan.kind == "study":
            from mesascope.experiments.study import run_study

            result = run_study(plan, out, thresholds, progress, timer)
            emit("trained", out, meta)
            return result
        with timer.stage("train"):
            get_trainer(plan.optimizer).fit(plan.scenario, plan.config, plan.seeds, out, progress)
        emit("trained", out, meta)
        return audit_run(out, audit, progress, thresholds, timer)

    return run_lifecycle(out, meta, events, produce)


def run_lifecycle(
    out: Path, meta: dict[str, Any], events: RunEvents | None, produce: Callable[[RunEvents], dict[str, Any]],
) -> dict[str, Any]:
    """Write `run.json`, then `produce` the run (it says "trained" itself), announcing every stage.

    One lifecycle for every way a run folder is made (`run`, `mesascope audit-policy`): `events` hears
    "started", whatever `produce` emits, "audited", then "complete"; or "failed" with `{"error": ...}`,
    after which the error is re-raised and what finished stays in the folder.

    Returns:
        What `produce` returned (the audit as a dict).

    Raises:
        MesascopeError: if `out` already holds a run (before anything is written).
    """
    _write_meta(out, meta)
    emit = events or _no_events
    emit("started", out, meta)
    try:
        result = produce(emit)
        emit("audited", out, result)
    except BaseException as err:  # recorded as incomplete (what finished stays), then re-raised
        emit("failed", out, {"error": error_line(err)})
        raise
    emit("complete", out, result)
    return result


def load_run(run_dir: Path) -> tuple[dict[str, Any], Any]:
    """A run folder's run.json and its scenario record, rebuilt with the run's parameters.

    Raises:
        MesascopeError: if `run_dir` is not a run folder.
    """
    meta_path = Path(run_dir) / "run.json"
    if not meta_path.exists():
        raise MesascopeError(f"{run_dir} is not a mesascope run folder (no run.json); pass the --out folder of a run")
    meta = json.loads(meta_path.read_text())
    return meta, get_scenario(meta["scenario"], **meta.get("scenario_params", {}))


def load_systems(run_dir: Path) -> tuple[dict[str, Any], Any, Any, list[TrainedSystem]]:
    """A gridworld run's metadata, scenario, training configuration and trained systems (one per seed).

    Raises:
        MesascopeError: if the folder is not a gridworld run, or its training did not finish.
    """
    meta, scenario = load_run(run_dir)
    if scenario.kind != "gridworld":
        raise MesascopeError(f"{run_dir} is a {scenario.kind} run: it has no trained gridworld systems to load")
    trainer = get_trainer(meta.get("optimizer", "ppo"))
    config = trainer.from_json(meta["config"])
    missing = [p for p in trainer.system_paths(Path(run_dir), meta["seeds"]) if not p.exists()]
    if missing:
        raise MesascopeError(f"{missing[0]} is missing: the run's training did not finish; rerun `mesascope run`")
    return meta, scenario, config, trainer.load(scenario, config, meta["seeds"], Path(run_dir))


def rejudge(
    run_dir: Path,
    audit: AuditConfig = AuditConfig(),
    progress: ProgressFn = _noop,
    thresholds: Thresholds = Thresholds(),
    timer: StageTimer = NULL_TIMER,
) -> dict[str, Any]:
    """`mesascope audit RUN_DIR`: audit a finished run again under `thresholds`, without retraining.

    A gridworld run is audited again from its saved systems (`audit` sets the level counts); a study's
    stored measurements are judged again (properties, graphs, verdicts, finding).

    Raises:
        MesascopeError: if the folder is not a finished run.
    """
    meta, scenario = load_run(run_dir)
    if scenario.kind == "study":
        from mesascope.experiments.study import rejudge_study

        return rejudge_study(Path(run_dir), scenario, thresholds)
    return audit_run(Path(run_dir), audit, progress, thresholds, timer)
