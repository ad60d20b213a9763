"""Every graph of a verdict case renders to valid SVG, and `mesascope graph` rebuilds it from audit.json."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from mesascope.cli import main
from mesascope.graphs import GRAPH_NAMES, get_graph, render_svg
from mesascope.properties import Thresholds, compute_properties
from mesascope.verdicts import audit_entry
from mesascope.verdicts.entry import evaluate_graphs

from test_verdicts_golden import CASES


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed (make test installs it)")
@pytest.mark.parametrize("case", ["capable-wrong-goal", "mesa-proxy"])
def test_every_graph_renders_to_valid_svg(tmp_path, case):
    m = CASES[case]
    evaluations = evaluate_graphs(m, compute_properties(m))
    assert set(evaluations) == set(GRAPH_NAMES)
    for name, ev in evaluations.items():
        result = render_svg(get_graph(name), ev, tmp_path / f"{name}.svg")
        assert result.format == "svg"
        root = ET.parse(result.path).getroot()
        assert root.tag.endswith("svg")


def test_graph_command_rebuilds_pictures_from_audit_json(tmp_path, capsys):
    systems = []
    for seed, case in enumerate(["capable-wrong-goal", "mesa-proxy"]):
        systems.append({"seed": seed, **audit_entry(CASES[case])})
    (tmp_path / "audit.json").write_text(json.dumps({"thresholds": Thresholds().to_dict(), "systems": systems}))
    assert main(["graph", str(tmp_path)]) == 0
    written = sorted(p.stem for p in (tmp_path / "graphs").iterdir())
    assert written == sorted(f"seed-{s}-{g}" for s in (0, 1) for g in GRAPH_NAMES)


def test_graph_and_explain_errors_are_one_line(tmp_path, capsys):
    assert main(["graph", str(tmp_path)]) == 2
    assert main(["explain", "not_a_property"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "valid names" in err and "outer_alignment" in err
    assert main(["explain", "objective_robustness"]) == 0
    out = capsys.readouterr().out
    assert "hubinger" in out and "demski" in out and "seeds/000_a6e1b8d5e803b8fe.txt" in out


GOLDEN_RENDER = __import__("pathlib").Path(__file__).parents[1] / "golden" / "verdict_table.txt"


def test_terminal_verdict_table_matches_golden():
    import os

    from rich.console import Console

    from mesascope.verdicts.table import verdict_table

    systems = [{"seed": seed, **audit_entry(CASES[case])} for seed, case in enumerate(["capable-wrong-goal", "mesa-proxy", "aligned"])]
    console = Console(width=100, record=True, color_system=None, file=open(os.devnull, "w"))
    console.print(verdict_table({"thresholds": Thresholds().to_dict(), "systems": systems}))
    text = console.export_text()
    if os.environ.get("MESASCOPE_UPDATE_GOLDEN"):
        GOLDEN_RENDER.write_text(text)
    assert text == GOLDEN_RENDER.read_text()
    assert verdict_table({"systems": [{"seed": 0}]}) is None  # an audit without verdicts: no table
