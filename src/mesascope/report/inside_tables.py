"""Tables of what `mesascope probe` and `steer` wrote (`RUN_DIR/inside/*.json`), for the terminal and the report.

Pure functions of the JSON files, so the report reads them without JAX (`mesascope.experiments.inside`
writes them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["probes_table", "steer_table"]


def probes_table(result: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """Rows `(split, target, {layer: "acc (shuffled)"})`, means over seeds, for the terminal table."""
    rows = []
    for split, block in result["splits"].items():
        for target in block["targets"]:
            cells = {}
            for layer in result["layers"]:
                scores = [s[target][layer] for s in block["seeds"].values()]
                acc = np.mean([s["accuracy"] for s in scores])
                shuffled = np.mean([s["shuffled"] for s in scores])
                cells[layer] = f"{acc:.2f} ({shuffled:.2f})"
            majority = np.mean([s[target][result["layers"][0]]["majority"] for s in block["seeds"].values()])
            cells["majority"] = f"{majority:.2f}"
            rows.append((split, target, cells))
    return rows


def steer_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows (one per seed) of the terminal table: each goal's first-reached probability and
    each objective's `J`, unedited -> steered."""
    first = next(iter(result["seeds"].values()))
    goals = list(first["unedited"]["first_reached"])
    objectives = list(first["unedited"]["j"])
    cols = ["seed", *(f"first: {g}" for g in goals), *(f"J_{o}" for o in objectives)]
    square = result.get("square")
    if square is not None:
        cols += [f"({square[0]},{square[1]}) first", f"levels with it > 0.5 (of {result['square_levels']})"]

    def fmt(a: float | None, b: float | None) -> str:
        return "n/a" if a is None or b is None else f"{a:.3f} -> {b:.3f}"

    rows = []
    for seed, r in result["seeds"].items():
        u, s = r["unedited"], r["steered"]
        row = [seed, *(fmt(u["first_reached"][g], s["first_reached"][g]) for g in goals),
               *(fmt(u["j"][o], s["j"][o]) for o in objectives)]
        if square is not None:
            row += [fmt(u["square_first"], s["square_first"]), fmt(u["square_first_share"], s["square_first_share"])]
        rows.append(row)
    return cols, rows
