"""One system's JSON-ready audit block: measurements, properties, graphs, verdicts, invariants (schema.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesascope.graphs import GRAPH_NAMES, GraphEvaluation, evaluate_graph, get_graph
from mesascope.properties.core import PropertyResult, Thresholds, compute_properties, graph_values
from mesascope.properties.measurements import Measurements
from mesascope.verdicts.schools import classify_failure, wentworth_corollary

__all__ = ["audit_entry", "evaluate_graphs", "graphs_block"]


def evaluate_graphs(m: Measurements, properties: Mapping[str, PropertyResult]) -> dict[str, GraphEvaluation]:
    """Evaluate the consolidated, revised and collapsed graphs (SPEC.md section 6) on one system."""
    values = graph_values(properties)
    return {name: evaluate_graph(get_graph(name), values, has_mesa_optimizer=m.has_mesa_objective) for name in GRAPH_NAMES}


def _graph_json(ev: GraphEvaluation) -> dict[str, Any]:
    def check(c: Any, kind: str) -> dict[str, Any]:
        if kind == "edge":
            return {"id": c.edge.id, "colour": c.edge.colour.value, "requirement": c.edge.requirement,
                    "status": c.status.value, "reason": c.reason}
        return {"id": c.implication.id, "requirement": c.implication.requirement, "status": c.status.value,
                "reason": c.reason}

    def path(p: Any) -> dict[str, Any]:
        return {"name": p.name, "status": p.status.value, "breaks_at": p.breaks_at,
                "edges": [e.id for e in p.edges], "failing": list(p.failing), "undefined": list(p.undefined)}

    return {
        "nodes": {n.node: {"state": n.measured.value, "derived": n.derived.value, "score": n.score} for n in ev.nodes},
        "edges": [check(c, "edge") for c in ev.edges],
        "implications": [check(c, "implication") for c in ev.implications],
        "certifying_paths": [path(p) for p in ev.certifying_paths],
        "broken_paths": [path(p) for p in ev.paths if p.status.value == "broken"],
        "undetermined_paths": [path(p) for p in ev.paths if p.status.value == "undetermined"],
        "counterexamples": [check(c, "edge" if hasattr(c, "edge") else "implication") for c in ev.counterexamples],
        "notes": list(ev.notes),
    }


def graphs_block(m: Measurements, properties: Mapping[str, PropertyResult]) -> dict[str, Any]:
    """`{graph_name: {...}}` for audit.json."""
    return {name: _graph_json(ev) for name, ev in evaluate_graphs(m, properties).items()}


def audit_entry(m: Measurements, thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
    """The JSON-ready block schema.md specifies for one system.

    Returns:
        `{"measurements", "properties", "graphs", "verdicts", "invariants"}`.
    """
    props = compute_properties(m, thresholds)
    verdicts = classify_failure(m, props, thresholds)
    return {
        "measurements": m.to_dict(),
        "properties": {name: r.to_dict() for name, r in props.items()},
        "graphs": graphs_block(m, props),
        "verdicts": {school: v.to_dict() for school, v in verdicts.items()},
        "invariants": {"wentworth_corollary": wentworth_corollary(m, props, thresholds)},
    }
