"""End to end: a real tiny `mesascope run` writes its report, and `mesascope audit` rewrites it.

Marked slow (about a minute of training and auditing on 2 shared cores); the default suite checks the
same wiring on the fixture run folder (test_report_golden.py).
"""

from __future__ import annotations

import pytest

from mesascope.cli import main

TINY = [
    "--seeds", "2", "--audit-levels", "8",
    "--param", "grid_size=5", "--param", "maze_sizes=[5]",
    "--set", "total_timesteps=2048", "--set", "num_envs=32", "--set", "num_steps=32", "--set", "level_pool=64",
]


@pytest.mark.slow
def test_run_then_audit_write_the_report(tmp_path, capsys, structure_of):
    from mesascope.report import SECTION_IDS

    out = tmp_path / "runs" / "cc"
    assert main(["run", "cheese-corner-v0", "--out", str(out), *TINY]) == 0
    assert "report written to" in capsys.readouterr().out and (out / "report.html").exists()
    html = (out / "report.html").read_text(encoding="utf-8")
    structure = structure_of(html)
    assert structure.sections == [sid for sid, _ in SECTION_IDS]
    assert [r[0] for r in structure.tables["summary-table"][1:]] == ["seed 0", "seed 1", "mean", "uniform-random"]
    assert "verdict-table" in structure.tables and html.count('<figure class="graph"') == 6

    (out / "report.html").unlink()
    assert main(["audit", str(out), "--audit-levels", "8"]) == 0
    assert (out / "report.html").read_text(encoding="utf-8") == html  # same audit, same report
