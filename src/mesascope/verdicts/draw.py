"""Graph pictures of a run: `RUN_DIR/graphs/seed-<K>-<graph>.svg` (SPEC.md section 6).

The pictures are rebuilt from `audit.json` alone (the stored measurements and thresholds), so
`mesascope graph RUN_DIR` works on any audited run folder, and a drawing failure can never touch the
audit itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mesascope.graphs import get_graph, render_svg
from mesascope.properties.core import Thresholds, compute_properties
from mesascope.measures.measurements import Measurements
from mesascope.types import MesascopeError
from mesascope.verdicts.entry import evaluate_graphs

__all__ = ["write_run_graphs"]


def write_run_graphs(run_dir: Path, audit: dict[str, Any] | None = None, judgements: Sequence[Any] | None = None) -> list[str]:
    """Draw every graph of every system of a run.

    Args:
        run_dir: The run folder.
        audit: Its audit dict; read from `run_dir / "audit.json"` when `None`.
        judgements: The harness's `Judgement`s of the audit's systems (and variants), in order: their graph
            evaluations are drawn as they are. Without them (`mesascope graph RUN_DIR`), each system's
            graphs are evaluated again from its stored measurements and the audit's thresholds.

    Returns:
        The files written, relative to `run_dir` (`.svg`, or `.dot` when Graphviz is missing).

    Raises:
        MesascopeError: if the folder has no audit with measurements.
    """
    run_dir = Path(run_dir)
    if judgements is not None:
        written, stems = [], set()
        for j in judgements:
            stem = base = re.sub(r"[^a-z0-9]+", "-", j.measurements.system.lower()).strip("-") or "system"
            k = 1
            while stem in stems:  # two systems with one name (a study's variants) never overwrite each other
                k += 1
                stem = f"{base}-{k}"
            stems.add(stem)
            for name, evaluation in j.evaluations.items():
                result = render_svg(get_graph(name), evaluation, run_dir / "graphs" / f"{stem}-{name}.svg")
                written.append(str(result.path.relative_to(run_dir)))
        return written
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
