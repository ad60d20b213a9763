"""The harness's study engine: execute a `Study`, judge what it measured, write the run folder.

A study (`mesascope.scenarios.study.Study`) trains and measures; it never judges and never writes. Here,
as for a gridworld audit, every measured system and variant is judged under the run's thresholds
(`mesascope.verdicts.judge`: properties, graphs evaluated once, verdicts, invariants), the variants'
verdicts are tabulated, the figures are drawn (`plots/<name>.png`), the expected finding is checked
(`finding`), and `audit.json` is written before the graph drawings, so a drawing failure never loses it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mesascope import __version__
from mesascope.experiments.profiling import NULL_TIMER, StageTimer
from mesascope.measures.measurements import Measurements
from mesascope.properties import Thresholds
from mesascope.scenarios.study import Study, StudyContext, StudySystem, jsonable
from mesascope.types import MesascopeError, error_line

__all__ = ["rejudge_study", "run_study"]

VARIANT_TABLE = "verdicts of each variant"
"""The name of the table (in `findings.tables`) that lists every school's label for every variant."""


def _save_figure(out: Path, name: str, draw: Callable[[Any], None]) -> str | None:
    """Draw a matplotlib figure with `draw(fig)` into `out/plots/<name>.png`.

    Returns:
        The relative path, or None when matplotlib (the optional `plots` extra) is not installed; the
        numbers behind every figure are in audit.json either way.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig = plt.figure(figsize=(6.4, 4.2), dpi=110)
    try:
        draw(fig)
        fig.tight_layout()
        (out / "plots").mkdir(parents=True, exist_ok=True)
        fig.savefig(out / "plots" / f"{name}.png")
    finally:
        plt.close(fig)
    return f"plots/{name}.png"


def _judged(systems: Sequence[StudySystem], thresholds: Thresholds) -> tuple[list[dict[str, Any]], list[Any]]:
    from mesascope.verdicts import judge

    entries, judgements = [], []
    for s in systems:
        j = judge(s.measurements, thresholds)
        entry = {"seed": s.seed, **({"name": s.name} if s.name else {}), **jsonable(dict(s.extra)), **j.to_entry()}
        entries.append(entry)
        judgements.append(j)
    return entries, judgements


def _variant_table(variants: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant: its name, seed and every school's label."""
    rows = []
    for v in variants:
        row = {"variant": v.get("name", ""), "seed": v["seed"]}
        row.update({school: verdict["label"] for school, verdict in v["verdicts"].items()})
        rows.append(row)
    return rows


def _finish(out: Path, study: Study, result: dict[str, Any], judgements: Sequence[Any], timer: StageTimer) -> dict[str, Any]:
    from mesascope.experiments.run import apply_finding

    apply_finding(study, result)
    if timer.enabled:
        result["timings"] = timer.as_dict()
    (out / "audit.json").write_text(json.dumps(jsonable(result), indent=2) + "\n")
    if judgements:
        with timer.stage("graph drawings"):
            try:  # the and-or graph pictures; the audit above is already safe on disk
                from mesascope.verdicts.draw import write_run_graphs

                result["graph_files"] = write_run_graphs(out, result, judgements=judgements)
            except Exception as err:  # noqa: BLE001 - reported, never fatal
                result["graphs_error"] = error_line(err)
        (out / "audit.json").write_text(json.dumps(jsonable(result), indent=2) + "\n")
    return result


def run_study(plan: Any, out: Path, thresholds: Thresholds, progress: Callable[[str, float], None],
              timer: StageTimer = NULL_TIMER) -> dict[str, Any]:
    """Execute a planned study run (`mesascope.experiments.run.plan_run`) into `out` (run.json already there).

    Returns:
        The audit (also written to `out / "audit.json"`).
    """
    study: Study = plan.scenario
    ctx = StudyContext(plan.seeds, plan.preset, plan.config, study.params, progress)
    started = time.perf_counter()
    with timer.stage("train and measure"):
        outcome = study.execute(ctx)
    with timer.stage("properties, graphs and verdicts"):
        systems, judged = _judged(outcome.systems, thresholds)
        variants, judged_variants = _judged(outcome.variants, thresholds)
    findings = dict(jsonable(outcome.findings))
    if variants:
        findings.setdefault("tables", {})[VARIANT_TABLE] = _variant_table(variants)
    plots = []
    with timer.stage("figures"):
        for name, draw in outcome.figures.items():
            try:
                path = _save_figure(out, name, draw)
            except Exception as err:  # noqa: BLE001 - a figure never costs the run
                findings.setdefault("figure_errors", {})[name] = error_line(err)
                continue
            if path:
                plots.append(path)
    result = {
        "mesascope_version": __version__,
        "kind": "study",
        "scenario": plan.scenario_id,
        "scenario_params": dict(plan.params),
        "params": dict(study.params),
        "description": study.description,
        "expected_finding": study.expected_finding,
        "optimizer": study.optimizer,
        "preset": plan.preset,
        "seeds": list(plan.seeds),
        "config": dict(plan.config),
        "thresholds": thresholds.to_dict(),
        "findings": findings,
        "systems": systems,
        "variants": variants,
        "plots": sorted(plots),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return _finish(out, study, result, judged + judged_variants, timer)


def rejudge_study(run_dir: Path, study: Study, thresholds: Thresholds) -> dict[str, Any]:
    """Judge a finished study's stored measurements again under `thresholds` (no re-execution).

    Raises:
        MesascopeError: if the study's audit.json is missing (the run did not finish).
    """
    path = run_dir / "audit.json"
    if not path.exists():
        raise MesascopeError(f"{run_dir} has no audit.json: the study did not finish; rerun `mesascope run`")
    result = json.loads(path.read_text())

    def again(blocks: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
        systems = [StudySystem(b["seed"], Measurements.from_dict(b["measurements"]), b.get("name", "")) for b in blocks]
        entries, judgements = _judged(systems, thresholds)
        keep = ("measurements", "properties", "graphs", "verdicts", "invariants")
        return [{**{k: v for k, v in b.items() if k not in keep}, **e} for b, e in zip(blocks, entries)], judgements

    result["systems"], judged = again(result.get("systems", []))
    result["variants"], judged_variants = again(result.get("variants", []))
    if result["variants"]:
        result.setdefault("findings", {}).setdefault("tables", {})[VARIANT_TABLE] = _variant_table(result["variants"])
    result["thresholds"] = thresholds.to_dict()
    return _finish(run_dir, study, result, judged + judged_variants, NULL_TIMER)
