"""The terminal summary table against a golden file (regenerate with MESASCOPE_REGOLD=1)."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from mesascope.cli import summary_table

GOLDEN = Path(__file__).parent / "golden" / "summary_table.txt"


def _scores(base_tr, base_dep):
    return {
        "train": {"base": base_tr, "intended": base_tr, "cheese": base_tr, "corner": 0.5},
        "deploy": {"base": base_dep, "intended": base_dep, "cheese": base_dep, "corner": 0.8},
    }


AUDIT = {
    "scenario": "cheese-corner-v0",
    "preset": "fast",
    "candidate_goals": ["cheese", "corner"],
    "systems": [
        {"seed": 0, "scores": _scores(0.972, -0.164), "first_reached": {"deploy": {"cheese": 0.541, "corner": 0.383, "none": 0.076}}},
        {"seed": 1, "scores": _scores(0.881, 0.95), "first_reached": {"deploy": {"cheese": 0.9, "corner": 0.05, "none": 0.05}}},
    ],
    "baselines": {"uniform": {"scores": _scores(0.0, 0.0), "first_reached": {"deploy": {"cheese": 0.699, "corner": 0.199, "none": 0.102}}}},
}


def test_summary_table_matches_golden():
    console = Console(width=100, record=True, color_system=None, force_terminal=False)
    console.print(summary_table(AUDIT))
    text = console.export_text()
    if os.environ.get("MESASCOPE_REGOLD"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    assert "seed 0" in text and "uniform" in text and "0.383" in text
