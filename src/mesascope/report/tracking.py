"""Optional MLflow logging of a finished run: parameters, scores as metrics, the run folder as artifacts.

For users who already track experiments in MLflow (`mesascope run ... --mlflow [--mlflow-uri URI]`).
MLflow lives in the optional extra `mlflow` (`pip install 'mesascope[mlflow]'`, which pulls the small
`mlflow-skinny` client); nothing else in mesascope imports it. Render only: every number logged is read
from the run folder's audit.json.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mesascope.types import MesascopeError

__all__ = ["MlflowMissingError", "audit_metrics", "audit_params", "log_run_to_mlflow", "require_mlflow"]

INSTALL_HINT = "install mesascope's optional extra `mlflow` (pip install mlflow-skinny)"
# No square brackets here: the CLI prints errors through rich, which would read `[mlflow]` as markup.
_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


class MlflowMissingError(MesascopeError):
    """`--mlflow` was asked for but MLflow is not installed; the message says how to install it."""


def require_mlflow() -> Any:
    """Import MLflow or raise `MlflowMissingError` with the install command."""
    try:
        import mlflow
    except ImportError:
        raise MlflowMissingError(f"--mlflow needs MLflow, which is not installed; {INSTALL_HINT}") from None
    return mlflow


def _key(text: str) -> str:
    return _KEY.sub("_", text)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[_key(prefix)] = json.dumps(value) if not isinstance(value, str) else value


def audit_params(audit: Mapping[str, Any]) -> dict[str, str]:
    """The run's parameters as flat MLflow params (`scenario`, `preset`, `param.*`, `config.*`, ...)."""
    out: dict[str, str] = {}
    for name in ("scenario", "preset", "optimizer", "mesascope_version", "gamma"):
        if audit.get(name) is not None:
            out[name] = str(audit[name])
    out["n_seeds"] = str(len(audit.get("seeds") or []))
    _flatten("param", audit.get("scenario_params") or {}, out)
    _flatten("config", audit.get("config") or {}, out)
    _flatten("audit", audit.get("audit") or {}, out)
    _flatten("threshold", audit.get("thresholds") or {}, out)
    return {k: v[:6000] for k, v in out.items()}  # MLflow's limit on a param value


def audit_metrics(audit: Mapping[str, Any]) -> dict[str, float]:
    """The scores as flat MLflow metrics.

    Per system `seed<K>.<split>.J_<objective>` and `seed<K>.<split>.first_<goal>`; their means over seeds
    as `mean.<split>.J_<objective>` and `mean.<split>.first_<goal>`; the uniform baseline as
    `uniform.<split>.first_<goal>`.
    """
    metrics: dict[str, float] = {}
    sums: dict[str, list[float]] = {}

    def put(name: str, value: Any, mean: str | None = None) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            metrics[_key(name)] = float(value)
            if mean is not None:
                sums.setdefault(_key(mean), []).append(float(value))

    for i, system in enumerate(audit.get("systems") or []):
        seed = system.get("seed", i)
        for split, scores in (system.get("scores") or {}).items():
            for obj, value in scores.items():
                put(f"seed{seed}.{split}.J_{obj}", value, f"mean.{split}.J_{obj}")
        for split, first in (system.get("first_reached") or {}).items():
            for goal, value in first.items():
                put(f"seed{seed}.{split}.first_{goal}", value, f"mean.{split}.first_{goal}")
    for name, values in sums.items():
        metrics[name] = sum(values) / len(values)
    uniform = (audit.get("baselines") or {}).get("uniform") or {}
    for split, first in (uniform.get("first_reached") or {}).items():
        for goal, value in first.items():
            put(f"uniform.{split}.first_{goal}", value)
    return metrics


def log_run_to_mlflow(run_dir: str | Path, uri: str | None = None, experiment: str = "mesascope") -> str:
    """Log a finished run folder to MLflow: params, the scores as metrics, every file as an artifact.

    Args:
        run_dir: A run folder with audit.json.
        uri: Tracking URI (a server `http://...`, `sqlite:///...`, or a local folder / `file:` URI);
            `None` uses MLflow's own default (`MLFLOW_TRACKING_URI`). A local folder is an explicit
            choice, so it opts in to MLflow's file store (which MLflow 3 otherwise refuses).
        experiment: MLflow experiment name.

    Returns:
        The MLflow run id.

    Raises:
        MlflowMissingError: if MLflow is not installed.
        MesascopeError: if the folder has no audit.json.
    """
    mlflow = require_mlflow()
    run_dir = Path(run_dir)
    path = run_dir / "audit.json"
    if not path.exists():
        raise MesascopeError(f"{run_dir} has no audit.json to log; run `mesascope audit {run_dir}` first")
    audit = json.loads(path.read_text(encoding="utf-8"))
    if uri is not None:
        if "://" not in uri and not uri.startswith("file:"):
            uri = Path(uri).resolve().as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_dir.name) as active:
        mlflow.set_tags({"mesascope.run_dir": str(run_dir.resolve()), "mesascope.scenario": str(audit.get("scenario"))})
        params = audit_params(audit)
        items = list(params.items())
        for lo in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            mlflow.log_params(dict(items[lo : lo + 100]))
        mlflow.log_metrics(audit_metrics(audit))
        mlflow.log_artifacts(str(run_dir), artifact_path="run")
        return active.info.run_id
