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


def _intervals(lo, hi):
    return {split: {obj: [lo, hi] for obj in ("base", "intended", "cheese", "corner")} for split in ("train", "deploy")}


def _choice(name, fit):
    return {"deploy": {"objective": {"name": name, "fit_quality": fit, "explained": name is not None}}}


AUDIT = {
    "scenario": "cheese-corner-v0",
    "preset": "fast",
    "candidate_goals": ["cheese", "corner"],
    "audit": {"n_train": 256, "n_deploy": 256},
    "informative_levels": {"train": {"base": 256, "intended": 256, "cheese": 256, "corner": 256},
                           "deploy": {"base": 256, "intended": 256, "cheese": 256, "corner": 109}},
    "systems": [
        {"seed": 0, "scores": _scores(0.972, -0.164), "intervals": _intervals(-0.2, 0.99),
         "behavioral": _choice("goal:corner", 0.118),
         "first_reached": {"deploy": {"cheese": 0.541, "corner": 0.383, "none": 0.076}}},
        {"seed": 1, "scores": _scores(0.881, 0.95), "intervals": _intervals(0.85, 0.97), "behavioral": _choice(None, 0.065),
         "first_reached": {"deploy": {"cheese": 0.9, "corner": 0.05, "none": 0.05}}},
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
    assert "n=256" in text and "0.85..0.97" in text and "corner" in text and "none" in text
    assert max(len(line) for line in text.splitlines()) <= 100
