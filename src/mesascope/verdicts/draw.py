"""Graph pictures of a run: `RUN_DIR/graphs/seed-<K>-<graph>.svg` (SPEC.md section 6).

The pictures are rebuilt from `audit.json` alone (the stored measurements and thresholds), so
`mesascope graph RUN_DIR` works on any audited run folder, and a drawing failure can never touch the
audit itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mesascope.graphs import get_graph, render_svg
from mesascope.properties.core import Thresholds, compute_properties
from mesascope.properties.measurements import Measurements
from mesascope.types import MesascopeError
from mesascope.verdicts.entry import evaluate_graphs

__all__ = ["write_run_graphs"]


def write_run_graphs(run_dir: Path, audit: dict[str, Any] | None = None) -> list[str]:
    """Draw every graph of every system of a run.

    Args:
        run_dir: The run folder.
        audit: Its audit dict; read from `run_dir / "audit.json"` when `None`.

    Returns:
        The files written, relative to `run_dir` (`.svg`, or `.dot` when Graphviz is missing).

    Raises:
        MesascopeError: if the folder has no audit with measurements.
    """
    run_dir = Path(run_dir)
    if audit is None:
        path = run_dir / "audit.json"
        if not path.exists():
            raise MesascopeError(f"{run_dir} has no audit.json; run `mesascope audit {run_dir}` first")
        audit = json.loads(path.read_text())
    systems = [s for s in audit.get("systems", []) if "measurements" in s]
    if not systems:
        raise MesascopeError(f"the audit in {run_dir} has no per-system measurements; re-run `mesascope audit {run_dir}`")
    thresholds = Thresholds.from_dict(audit.get("thresholds", {}))
    written = []
    for entry in systems:
        m = Measurements.from_dict(entry["measurements"])
        for name, evaluation in evaluate_graphs(m, compute_properties(m, thresholds), thresholds).items():
            result = render_svg(get_graph(name), evaluation, run_dir / "graphs" / f"seed-{entry['seed']}-{name}.svg")
            written.append(str(result.path.relative_to(run_dir)))
    return written
