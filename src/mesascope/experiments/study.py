"""Running a `Study` (a non-gridworld scenario) into a run folder.

The folder has the same layout as a gridworld run, written in this order so that a later failure
never loses what finished: `run.json` (before anything is computed), the study's plots
(`plots/*.png`), then `audit.json` with `findings` (the scenario-specific results and the checks of
the expected finding) and, where the study has them, per-system `measurements`, `properties` and
`verdicts` blocks (notes/schema.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mesascope import __version__
from mesascope.properties.core import Thresholds
from mesascope.types import MesascopeError

__all__ = ["check", "jsonable", "run_study", "save_figure"]


def _noop(stage: str, frac: float) -> None:
    return None


def jsonable(x: Any) -> Any:
    """Numpy/JAX scalars and arrays to plain Python, recursively (for json.dumps)."""
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


def check(name: str, measured: Any, expected: str, holds: bool) -> dict[str, Any]:
    """One check of a study's expected finding, as stored in `findings.checks`."""
    return {"name": name, "measured": jsonable(measured), "expected": expected, "holds": bool(holds)}


def save_figure(out: Path, name: str, draw: Callable[[Any], None]) -> str | None:
    """Draw a matplotlib figure with `draw(fig)` and save it as `out/plots/<name>.png`.

    Returns:
        The relative path written, or None when matplotlib is not installed (the optional `plots`
        extra); the numbers behind every plot are in audit.json either way.
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


def run_study(
    study_id: str,
    *,
    seeds: int = 4,
    preset: str = "fast",
    out: Path,
    overrides: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    progress: Callable[[str, float], None] = _noop,
    thresholds: Thresholds = Thresholds(),
) -> dict[str, Any]:
    """Run a study with seeds `0..seeds-1` and write its run folder.

    Every verdict the study computes uses `thresholds` (recorded in run.json and audit.json).

    Returns:
        The audit (also written to `out / "audit.json"`).

    Raises:
        MesascopeError: on a bad id, preset, setting, parameter, seed count or output folder.
    """
    # imported here: study modules import this module's helpers while the registry is loading
    from mesascope.scenarios.study import StudyContext, get_study

    study = get_study(study_id)
    config, full_params = study.resolve(preset, dict(overrides or {}), dict(params or {}))
    if seeds < 1:
        raise MesascopeError(f"--seeds must be at least 1; got {seeds}")
    out.mkdir(parents=True, exist_ok=True)
    if (out / "run.json").exists():
        raise MesascopeError(f"{out} already holds a run; choose another --out folder or delete it")
    meta = {
        "mesascope_version": __version__,
        "kind": "study",
        "scenario": study_id,
        "scenario_params": dict(params or {}),
        "params": full_params,
        "preset": preset,
        "optimizer": study.optimizer,
        "seeds": list(range(seeds)),
        "config": config,
        "thresholds": thresholds.to_dict(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (out / "run.json").write_text(json.dumps(jsonable(meta), indent=2) + "\n")
    ctx = StudyContext(tuple(range(seeds)), preset, config, full_params, out, progress, thresholds)
    started = time.perf_counter()
    produced = study.execute(ctx)
    checks = produced["findings"].get("checks", [])
    result = {
        "kind": "study",
        "scenario": study_id,
        "scenario_params": dict(params or {}),
        "params": full_params,
        "description": study.description,
        "expected_finding": study.expected_finding,
        "optimizer": study.optimizer,
        "preset": preset,
        "seeds": list(range(seeds)),
        "config": config,
        "thresholds": thresholds.to_dict(),
        "finding_holds": bool(checks) and all(c["holds"] for c in checks),
        "findings": produced["findings"],
        "systems": produced.get("systems", []),
        "plots": sorted(str(p.relative_to(out)) for p in (out / "plots").glob("*.png")) if (out / "plots").exists() else [],
        "seconds": round(time.perf_counter() - started, 1),
    }
    result = jsonable(result)
    (out / "audit.json").write_text(json.dumps(result, indent=2) + "\n")
    if any("measurements" in s for s in result["systems"]):
        try:  # the and-or graph pictures; the audit above is already safe on disk
            from mesascope.verdicts.draw import write_run_graphs

            write_run_graphs(out, result)
        except Exception as err:  # noqa: BLE001
            result["graphs_error"] = f"{type(err).__name__}: {err}"
            (out / "audit.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
