"""DOT text and SVG rendering of the graphs, with and without Graphviz (SPEC.md section 6)."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

import pytest

from mesascope.graphs import (
    GRAPH_NAMES,
    PropertyValue,
    Truth,
    evaluate_graph,
    get_graph,
    render_svg,
    revised_graph,
    to_dot,
)
from mesascope.graphs import render as render_module

ALL = (
    "behavioral_alignment",
    "outer_alignment",
    "on_distribution_alignment",
    "robustness",
    "capability_robustness",
    "objective_robustness",
    "inner_alignment",
    "intent_alignment",
    "inner_robustness",
)

QUOTED = r'"(?:[^"\\]|\\.)*"'
STATEMENT = re.compile(
    rf"^\s*(?:"
    rf"(?:graph|node|edge) \[.*\];"  # default attributes
    rf"|{QUOTED} \[.*\];"  # node
    rf"|{QUOTED}(?: -> {QUOTED})+(?: \[.*\])?;"  # edge
    rf"|\{{rank=same; .*\}}"  # layout subgraph
    rf")$"
)


def evaluation_for(name, **states):
    values = {p: PropertyValue(p, Truth.HOLDS, score=0.95, threshold=0.9) for p in ALL}
    for p, t in states.items():
        values[p] = PropertyValue(p, t, score=0.25, threshold=0.9)
    return evaluate_graph(get_graph(name), values, has_mesa_optimizer=True)


def check_dot_syntax(text, graph):
    """A small structural parse: one statement per line, every edge endpoint declared."""
    lines = text.strip().splitlines()
    assert lines[0] == f'digraph "{graph.name}" {{' and lines[-1] == "}"
    declared = set()
    for line in lines[1:-1]:
        assert STATEMENT.match(line), line
        m = re.match(rf"^\s*({QUOTED}) \[", line)
        if m:
            declared.add(m.group(1).strip('"'))
    for line in lines[1:-1]:
        if "->" in line and "rank=same" not in line:
            ends = re.findall(rf"({QUOTED})(?= ->|(?: \[|;))", line.split(" [")[0] + ";")
            for end in ends:
                assert end.strip('"') in declared, (end, line)
    return declared


@pytest.mark.parametrize("name", GRAPH_NAMES)
def test_to_dot_structure(name):
    graph = get_graph(name)
    text = to_dot(graph)
    declared = check_dot_syntax(text, graph)
    assert set(graph.node_ids) <= declared
    joint = [e for e in graph.edges if len(e.antecedents) > 1]
    junctions = {d for d in declared if d.startswith("__and_")}
    assert len(junctions) == len(joint)  # one junction point per jointly sufficient set
    assert text.count('shape="point"') == len(joint)
    for edge in joint:
        index = graph.edges.index(edge)
        for a in edge.antecedents:  # lines into the junction carry no arrowhead; only the joint arrow does
            assert re.search(rf'"{a}" -> "__and_{index}" \[[^\]]*arrowhead="none"', text)
        assert f'"__and_{index}" -> "{edge.consequent}"' in text
    assert text.count('style="dashed"') == len(graph.implications)


def test_edge_colours_follow_the_seed():
    text = to_dot(revised_graph())
    assert re.search(r'"inner_alignment" -> "__and_\d+" \[color="goldenrod"', text)
    assert re.search(r'"capability_robustness" -> "__and_\d+" \[color="red"', text)
    assert re.search(r'"inner_robustness" -> "capability_robustness" \[color="blue", style="dashed"', text)
    consolidated = to_dot(get_graph("consolidated"))
    assert '"inner_alignment" -> "objective_robustness" [color="blue"' in consolidated
    assert 'label="needs mesa-optimizer"' in consolidated


def test_pseudo_equivalence_directions_are_labelled_separately():
    text = to_dot(revised_graph())
    forward = re.search(r'"outer_alignment" -> "on_distribution_alignment" \[.*label="([^"]*)"', text)
    backward = re.search(r'"on_distribution_alignment" -> "outer_alignment" \[.*label="([^"]*)"', text)
    assert forward.group(1) == "needs a training-optimal system"
    assert backward.group(1) == "needs prosaic training"


def test_labels_show_state_and_score():
    ev = evaluation_for("revised", robustness=Truth.FAILS)
    text = to_dot(revised_graph(), ev)
    assert 'label="robustness\\nfails [' not in text  # no school on a single-definition property
    assert '"robustness" [label="robustness\\nfails\\nscore 0.25 (threshold 0.9)\\ngraph implies: holds"' in text
    assert 'label="outer alignment\\nholds\\nscore 0.95 (threshold 0.9)"' in text
    assert "counterexample" in text and 'penwidth="3.5"' in text
    assert "generalization-focused path: broken (breaks at robustness)" in text
    assert "objective-focused path: certifies" in text
    assert text.count('fillcolor="#f6c6c6"') == 1  # exactly one failing node


def test_legend_mentions_only_what_is_drawn():
    assert "dashed: pseudo-equivalence" in to_dot(revised_graph())
    assert "dashed" not in to_dot(get_graph("consolidated"))
    values = {p: PropertyValue(p, Truth.HOLDS) for p in ALL[:6]}
    ev = evaluate_graph(get_graph("consolidated"), values, has_mesa_optimizer=False)
    text = to_dot(get_graph("consolidated"), ev)
    assert "dotted: not applicable" in text
    assert '"inner_alignment" -> "objective_robustness" [color="blue", tooltip=' in text
    assert 'style="dotted"' in text


def test_to_dot_rejects_an_evaluation_of_another_graph():
    with pytest.raises(ValueError, match="revised"):
        to_dot(get_graph("consolidated"), evaluation_for("revised"))


def test_labels_are_escaped():
    assert render_module._quote('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'


needs_dot = pytest.mark.skipif(render_module.find_dot() is None, reason="Graphviz `dot` not installed")


def svg_text(root):
    return " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))


@needs_dot
@pytest.mark.parametrize("name", GRAPH_NAMES)
def test_render_svg_is_valid_and_labels_every_node(tmp_path, name):
    graph = get_graph(name)
    ev = evaluation_for(name, outer_alignment=Truth.FAILS)
    result = render_svg(graph, ev, tmp_path / f"{name}.svg")
    assert result.ok and result.format == "svg" and result.path.suffix == ".svg"
    root = ET.parse(result.path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = svg_text(root)
    for node in graph.nodes:
        assert node.label in text, node.label
    assert "fails" in text and "holds" in text


@needs_dot
def test_render_svg_without_the_python_package_uses_the_binary(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # `import graphviz` now raises ImportError
    result = render_svg(revised_graph(), None, tmp_path / "bare")
    assert result.ok and result.path.name == "bare.svg"
    assert ET.parse(result.path).getroot().tag.endswith("svg")


@pytest.mark.parametrize("how", ["find_dot", "empty PATH"])
def test_render_falls_back_to_dot_text_when_dot_is_missing(tmp_path, monkeypatch, how):
    if how == "find_dot":
        monkeypatch.setattr(render_module, "find_dot", lambda: None)
    else:
        monkeypatch.setenv("PATH", "")
    graph = revised_graph()
    ev = evaluation_for("revised")
    result = render_svg(graph, ev, tmp_path / "out" / "revised.svg")
    assert not result.ok and result.format == "dot"
    assert result.path == tmp_path / "out" / "revised.dot"
    assert result.path.read_text() == to_dot(graph, ev)
    assert "`dot` was not found" in result.message and "apt-get install graphviz" in result.message
    assert not (tmp_path / "out" / "revised.svg").exists()


def test_render_falls_back_when_dot_fails(tmp_path, monkeypatch):
    def broken(source, dot):
        raise RuntimeError("syntax error in line 1")

    monkeypatch.setattr(render_module, "find_dot", lambda: "/usr/bin/dot")
    monkeypatch.setattr(render_module, "_run_dot", broken)
    result = render_svg(revised_graph(), None, tmp_path / "g.svg")
    assert result.format == "dot" and result.path.exists()
    assert "failed (RuntimeError: syntax error in line 1)" in result.message
