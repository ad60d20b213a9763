"""The report's structure against a golden file, built from the fixed audit.json of a real tiny run.

No browser needed: the HTML is parsed with the standard library. To accept an intended change of the
report, regenerate the golden file with `MESASCOPE_UPDATE_GOLDEN=1 pytest tests/report/test_report_golden.py`
and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from mesascope.cli import main
from mesascope.report import SECTION_IDS, ReportError, build_run_report, try_write_report, write_run_report

GOLDEN_FILE = Path(__file__).resolve().parent.parent / "golden" / "report_structure.txt"
GOLDEN_TABLES = (
    "objectives-table",
    "summary-table",
    "scores-table",
    "first-reached-table",
    "epic-deploy-table",
    "properties-table",
    "verdict-table",
    "invariants-table",
)


def structure_text(structure) -> str:
    lines = ["sections: " + " ".join(structure.sections)]
    for table_id in GOLDEN_TABLES:
        lines.append(f"[{table_id}]")
        lines += [" | ".join(row) for row in structure.tables.get(table_id, [["(missing)"]])]
    return "\n".join(lines) + "\n"


def test_structure_matches_golden(report_run, structure_of):
    text = structure_text(structure_of(report_run.html))
    if os.environ.get("MESASCOPE_UPDATE_GOLDEN"):
        GOLDEN_FILE.write_text(text, encoding="utf-8")
    assert text == GOLDEN_FILE.read_text(encoding="utf-8")


def test_every_section_in_order_with_a_table_of_contents(report_run, structure_of):
    structure = structure_of(report_run.html)
    assert structure.sections == [sid for sid, _ in SECTION_IDS]
    for sid, title in SECTION_IDS:
        assert f'<a href="#{sid}">{title}</a>' in report_run.html


def test_numbers_come_from_audit_json(report_run, structure_of):
    """The summary table shows each seed's scores exactly as audit.json has them (3 decimals)."""
    audit = json.loads((report_run.run_dir / "audit.json").read_text())
    rows = {r[0]: r[1:] for r in structure_of(report_run.html).tables["summary-table"]}
    for system in audit["systems"]:
        row = rows[f"seed {system['seed']}"]
        # The score over informative levels, then its 95% interval.
        lo, hi = system["intervals"]["deploy"]["intended"]
        value = f"{system['scores']['deploy']['intended']:.3f}"
        assert row[3] == f"{value}{lo:.3f} to {hi:.3f}".replace("-", "−")
        assert row[5] == f"{system['first_reached']['deploy']['cheese']:.3f}"
    uniform = rows["uniform-random"]
    assert uniform[6] == f"{audit['baselines']['uniform']['first_reached']['deploy']['corner']:.3f}"


def test_self_contained(report_run):
    html = report_run.html
    assert "<link" not in html and "<script" not in html and "@import" not in html
    # Every src/href is inline data or an in-page anchor; the only URLs are XML namespace names.
    for attr in re.findall(r'\b(?:src|href)="([^"]*)"', html):
        assert attr.startswith(("data:image/png;base64,", "#")), attr
    assert not re.search(r"url\((?!#)", html)
    pictures = list((report_run.run_dir / "pictures").glob("*.png"))
    assert len(pictures) == 2 + 3  # two seeds, three witness policies
    assert len(re.findall(r'<img class="level-picture"', html)) == len(pictures)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed (make test installs it)")
def test_every_graph_of_every_seed_is_drawn_inline(report_run):
    html = report_run.html
    assert html.count('<figure class="graph"') == 6  # 3 graphs x 2 seeds, drawn by Graphviz
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # several SVGs in one page: every element id stays unique


def test_same_folder_gives_the_same_report(report_run):
    assert build_run_report(report_run.run_dir) == report_run.html


def test_text_from_files_is_escaped(fixture_run_copy, monkeypatch):
    import mesascope.report.graph_figures as figures

    monkeypatch.setattr(figures, "find_dot", lambda: None)  # the graphs play no part here; skip drawing them
    run_dir = fixture_run_copy()
    audit = json.loads((run_dir / "audit.json").read_text())
    audit["description"] = "<script>alert('x')</script> & friends"
    audit["systems"][0]["verdicts"]["hubinger"]["reason"] = "<img src=x onerror=alert(1)>"
    (run_dir / "audit.json").write_text(json.dumps(audit))
    html = build_run_report(run_dir)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; friends" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_an_older_audit_says_what_was_not_computed(fixture_run_copy, structure_of):
    run_dir = fixture_run_copy()
    audit = json.loads((run_dir / "audit.json").read_text())
    audit.pop("thresholds")
    for system in audit["systems"]:
        for key in ("measurements", "properties", "graphs", "verdicts", "invariants"):
            system.pop(key)
    (run_dir / "audit.json").write_text(json.dumps(audit))
    html = build_run_report(run_dir)
    structure = structure_of(html)
    assert structure.sections == [sid for sid, _ in SECTION_IDS]  # every section is still there
    for sid in ("properties", "graphs", "verdicts"):
        body = html.split(f'<section id="{sid}">', 1)[1].split("</section>", 1)[0]
        assert "not computed for this run" in body, sid
    assert "summary-table" in structure.tables and "verdict-table" not in structure.tables


def test_without_graphviz_the_graphs_become_a_clear_note(fixture_run_copy, monkeypatch):
    import mesascope.report.graph_figures as figures

    monkeypatch.setattr(figures, "find_dot", lambda: None)
    html = build_run_report(fixture_run_copy())
    assert '<figure class="graph"' not in html
    assert html.count("Graphviz `dot` was not found on this machine") == 6
    assert "apt-get install graphviz" in html
    assert 'class="data graph-nodes"' in html  # the node states are still shown, as tables


def test_missing_or_broken_audit_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ReportError, match="no audit.json"):
        write_run_report(tmp_path)
    (tmp_path / "audit.json").write_text("{not json")
    with pytest.raises(ReportError, match="not readable JSON"):
        write_run_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    path, why = try_write_report(tmp_path)  # what `run` and `audit` call: never raises
    assert path is None and "not readable JSON" in why
    assert (tmp_path / "audit.json").read_text() == "{not json"  # and never touches the audit
    assert not (tmp_path / "report.html").exists()


def test_cli_report_writes_the_file(fixture_run_copy, capsys):
    run_dir = fixture_run_copy()
    out = run_dir / "elsewhere.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "report written to" in capsys.readouterr().out


def test_run_command_writes_the_report_and_a_failure_only_warns(fixture_run_copy, monkeypatch, capsys):
    """`mesascope run` ends with the report; if the report fails, the audit stays and a warning is printed.

    The training and audit are replaced by the fixture run (they have their own tests): this checks the
    wiring of the command, not the training.
    """
    import mesascope.experiments.run as run_module
    import mesascope.report as report

    source = fixture_run_copy()

    def fake_run(scenario_id, *, out, **kwargs):
        for item in source.iterdir():
            target = out / item.name
            if item.is_dir():
                import shutil

                shutil.copytree(item, target)
            else:
                target.write_bytes(item.read_bytes())
        return json.loads((out / "audit.json").read_text())

    monkeypatch.setattr(run_module, "run", fake_run)
    out = source.parent / "cli-run"
    out.mkdir()
    assert main(["run", "cheese-corner-v0", "--seeds", "2", "--out", str(out), "--db", str(source.parent / "runs.duckdb")]) == 0
    assert (out / "report.html").exists()
    assert "report written to" in capsys.readouterr().out

    def broken(run_dir, out=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "write_run_report", broken)
    out2 = source.parent / "cli-run-2"
    out2.mkdir()
    assert main(["run", "cheese-corner-v0", "--seeds", "2", "--out", str(out2), "--db", str(source.parent / "runs.duckdb")]) == 0
    captured = capsys.readouterr()
    assert "warning: the HTML report could not be written (RuntimeError: disk full)" in captured.err
    assert (out2 / "audit.json").exists() and not (out2 / "report.html").exists()


def test_a_mesa_optimizer_run_shows_its_mesa_objective(structure_of, monkeypatch):
    """`tests/golden/report_run_mesa/`: a real 1-seed run of cheese-corner-mesa-v0 (grid 5, 10 gradient
    steps on 8 levels, 8 audited levels per split)."""
    import mesascope.report.graph_figures as figures

    monkeypatch.setattr(figures, "find_dot", lambda: None)  # the drawings are covered above
    run_dir = Path(__file__).resolve().parent.parent / "golden" / "report_run_mesa"
    audit = json.loads((run_dir / "audit.json").read_text())
    mesa = audit["systems"][0]["mesa_objective"]
    epic = audit["systems"][0]["distances"]["deploy"]["epic"]
    html = build_run_report(run_dir)
    rows = structure_of(html).tables["mesa-table"]
    assert rows[0] == ["system", *mesa["weights"], "EPIC to base (deploy)", "EPIC to intended (deploy)"]
    expected = [f"{w:.3f}".replace("-", "−") for w in mesa["weights"].values()]
    expected += [f"{epic['base~mesa']:.3f}", f"{epic['intended~mesa']:.3f}"]
    assert rows[1] == ["seed 0", *expected]
    assert mesa["bridge"]["name"] in html
    props = {r[0]: r for r in structure_of(html).tables["properties-table"]}
    state = audit["systems"][0]["properties"]["inner_alignment"]["state"]
    assert props["inner alignment"][2].startswith(state)  # defined (not undefined) for a mesa-optimizer


def test_a_study_shows_its_checks_tables_and_plots(tmp_path, structure_of):
    """Non-gridworld scenarios (studies) record their own results under `findings`."""
    from PIL import Image

    (tmp_path / "plots").mkdir()
    Image.new("RGB", (40, 30), "white").save(tmp_path / "plots" / "frequency.png")
    audit = {
        "kind": "study",
        "scenario": "some-study-v0",
        "description": "A population evolves.",
        "expected_finding": "The driver invades.",
        "finding_holds": False,
        "findings": {
            "checks": [{"name": "invasion", "measured": 1.2, "expected": "> 1", "holds": True},
                       {"name": "equilibrium gap", "measured": 0.25, "expected": "< 0.01", "holds": False}],
            "tables": {"schools per behaviour": [{"behaviour": "birth control", "wentworth": "outer", "hubinger": "none"}]},
            "p_star": 0.4,
        },
        "plots": ["plots/frequency.png", "../outside.png"],
        "systems": [{"seed": 0, "properties": {}, "verdicts": {}}],
    }
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    html = build_run_report(tmp_path)
    structure = structure_of(html)
    assert structure.sections[:2] == ["overview", "findings"]
    assert structure.tables["checks-table"][1:] == [["invasion", "1.2", "> 1", "holds"], ["equilibrium gap", "0.25", "< 0.01", "fails"]]
    assert "the expected finding was NOT reproduced" in html
    assert "birth control" in html and "&quot;p_star&quot;: 0.4" in html
    assert html.count('class="plot-picture"') == 1  # a plot outside the run folder is not read
    assert "study without gridworld levels" in html.split('<section id="scores">', 1)[1].split("</section>", 1)[0]


def test_verdicts_at_a_glance_count_seeds(report_run):
    audit = json.loads((report_run.run_dir / "audit.json").read_text())
    labels = [s["verdicts"]["wentworth"]["label"] for s in audit["systems"]]
    label = labels[0]
    expected = f"<strong>Wentworth (after training)</strong>: {label} ({labels.count(label)}/{len(labels)})"
    summary = report_run.html.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    assert expected in summary
