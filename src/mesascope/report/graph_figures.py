"""The and-or graphs of one system, drawn from what audit.json recorded (SPEC.md section 6).

Render only: the node states come from the audit (`systems[i].graphs[name].nodes` and
`systems[i].properties`); `mesascope.graphs.evaluate_graph` only re-reads them so that `to_dot` can colour
each node by its measured state and mark counterexample edges. Nothing is re-measured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesascope.graphs import PROPERTIES, GraphError, PropertyValue, Truth, evaluate_graph, get_graph, index_values, to_dot
from mesascope.graphs.render import INSTALL_HINT, drawn_svg, find_dot
from mesascope.report.html import prefix_svg_ids

__all__ = ["GraphFigure", "graph_figures", "prefix_svg_ids", "property_values"]

_STATES = {t.value for t in Truth}


@dataclass(frozen=True)
class GraphFigure:
    """One graph of one system, ready to place in the report.

    Attributes:
        name: The graph's name (`consolidated`, `revised`, `collapsed`).
        title: The graph's title.
        svg: The drawing as inline `<svg>` text, or `None` when it could not be drawn.
        note: Why there is no drawing (e.g. Graphviz missing), or notes from the evaluation.
        nodes: `(node id, label, state, score)` rows, as recorded in audit.json.
        paths: `{"certifying_paths": [...], "broken_paths": [...], "counterexamples": [...]}` as recorded.
    """

    name: str
    title: str
    svg: str | None
    note: str
    nodes: tuple[tuple[str, str, str, float | None], ...]
    paths: Mapping[str, Any] = field(default_factory=dict)


def _state(raw: Any) -> str:
    text = str(raw).lower() if raw is not None else "undefined"
    return text if text in _STATES else "undefined"


def _base_property(name: str, school: str | None) -> str | None:
    """The graphs' property id behind an audit property name (`objective_robustness_demski` -> `objective_robustness`)."""
    if name in PROPERTIES:
        return name
    if school and name.endswith(f"_{school}") and name[: -len(school) - 1] in PROPERTIES:
        return name[: -len(school) - 1]
    return None


def _graph_nodes() -> Mapping[str, tuple[str, ...]] | None:
    try:
        from mesascope.properties.core import GRAPH_NODES
    except ImportError:  # an older mesascope: fall back to matching names
        return None
    return GRAPH_NODES


def property_values(system: Mapping[str, Any], graph_name: str) -> dict[str, PropertyValue]:
    """Property values for `evaluate_graph`, keyed as it looks them up, from one system's audit block.

    The `properties` block is read the way the audit read it (`mesascope.properties.core.GRAPH_NODES`:
    which recorded property each node reads); a node with no such property falls back to the state the
    audit recorded for it in `graphs[graph_name].nodes`.
    """
    graph = get_graph(graph_name)
    recorded_props = system.get("properties") or {}
    mapping = _graph_nodes()
    if mapping is None:
        mapping = {p: tuple(n for n in recorded_props if _base_property(n, (recorded_props[n] or {}).get("school")) == p) for p in PROPERTIES}
    found: list[PropertyValue] = []
    for node, names in mapping.items():
        for name in names:
            entry = recorded_props.get(name)
            if not entry:
                continue
            school = entry.get("school") or None
            found.append(PropertyValue(
                node,
                Truth(_state(entry.get("state"))),
                entry.get("score"),
                entry.get("threshold"),
                school=None if school in (None, "spec") else school,
            ))
    values = dict(index_values(found))
    recorded = ((system.get("graphs") or {}).get(graph_name) or {}).get("nodes") or {}
    for node_id, entry in recorded.items():
        if node_id not in graph.node_ids or node_id in values:
            continue
        school = graph.school_of(node_id)
        key = f"{node_id}/{school}" if school else node_id
        if key not in values:
            values[key] = PropertyValue(node_id, Truth(_state(entry.get("state"))), entry.get("score"), school=school)
    return values


def _dot_to_svg(source: str, dot: str) -> str:
    text = drawn_svg(source, dot).decode("utf-8")
    return _display_size(text[text.index("<svg") :])


DISPLAY_SCALE = 0.72
"""Graphs are shown at this fraction of Graphviz's natural size, whatever their width: every graph's
text then has the same readable size, and a wide graph scrolls sideways instead of shrinking to dots."""


def _display_size(svg: str) -> str:
    match = re.match(r'<svg width="([0-9.]+)pt" height="([0-9.]+)pt"', svg)
    if match is None:
        return svg
    width, height = (float(x) * 4 / 3 * DISPLAY_SCALE for x in match.groups())  # pt -> CSS px
    return svg.replace(match.group(0), f'<svg width="{width:.0f}" height="{height:.0f}" style="max-width:none"', 1)


def graph_figures(system: Mapping[str, Any], *, prefix: str) -> list[GraphFigure]:
    """Every recorded and-or graph of one system, drawn with its node states.

    Args:
        system: One `systems[i]` block of audit.json.
        prefix: Unique prefix for the SVG ids (e.g. `"seed0"`).

    Returns:
        One `GraphFigure` per graph in `system["graphs"]` (empty if the audit recorded none).
    """
    figures = []
    dot = find_dot()
    recorded_mesa = (system.get("measurements") or {}).get("has_mesa_objective")
    has_mesa = bool(recorded_mesa) if recorded_mesa is not None else system.get("mesa_objective") is not None
    for name, block in (system.get("graphs") or {}).items():
        block = block or {}
        nodes_raw = block.get("nodes") or {}
        try:
            graph = get_graph(name)
        except Exception:  # noqa: BLE001 - a graph this version does not know: show its table only
            rows = tuple((n, n.replace("_", " "), _state(e.get("state")), e.get("score")) for n, e in nodes_raw.items())
            figures.append(GraphFigure(name, name, None, f"unknown graph {name!r}: shown as a table only", rows, block))
            continue
        rows = tuple(
            (n.id, n.label, _state((nodes_raw.get(n.id) or {}).get("state")), (nodes_raw.get(n.id) or {}).get("score"))
            for n in graph.nodes
        )
        if dot is None:
            note = f"Graphviz `dot` was not found on this machine, so the graph is not drawn; {INSTALL_HINT}."
            figures.append(GraphFigure(name, graph.title, None, note, rows, block))
            continue
        try:
            values = property_values(system, name)
            try:
                evaluation = evaluate_graph(graph, values, has_mesa_optimizer=has_mesa)
            except GraphError:
                # A mesa-only property given a state for a system without an explicit mesa-objective:
                # draw what was recorded rather than refuse.
                evaluation = evaluate_graph(graph, values, has_mesa_optimizer=True)
            svg = prefix_svg_ids(_dot_to_svg(to_dot(graph, evaluation), dot), f"{prefix}-{name}")
            note = "; ".join(evaluation.notes)
        except Exception as err:  # noqa: BLE001 - a drawing failure must not cost the rest of the report
            svg, note = None, f"the graph could not be drawn ({type(err).__name__}: {str(err)[:200]})"
        figures.append(GraphFigure(name, graph.title, svg, note, rows, block))
    return figures
