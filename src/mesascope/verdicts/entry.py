"""One system's JSON-ready audit block: measurements, properties, graphs, verdicts, invariants (schema.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mesascope.graphs import GRAPH_NAMES, Condition, GraphEvaluation, Truth, evaluate_graph, get_graph
from mesascope.properties.core import PropertyResult, Thresholds, compute_properties, graph_values
from mesascope.measures.measurements import Measurements
from mesascope.verdicts.consistency import label_contradictions
from mesascope.verdicts.schools import classify_failure, wentworth_corollary

__all__ = ["Judgement", "audit_entry", "evaluate_graphs", "graph_facts", "graphs_block", "judge"]


def graph_facts(m: Measurements, properties: Mapping[str, PropertyResult], thresholds: Thresholds = Thresholds()) -> dict[Condition, Truth]:
    """The state of every operational edge condition of SPEC.md section 6 on one system.

    * training-optimal: the `training_optimality` property;
    * outer-aligned base objective: Hubinger's (infinite-data) outer alignment;
    * the behavioral objective is the bridged mesa-objective: `EPIC(beh, bridge(g)) <= eps` on deploy
      (unknown without a mesa-objective or a behavioral objective);
    * sufficient agency: the behaviour is explained by a goal (fit >= kappa, SPEC.md section 4); a system
      no goal explains is not acting as an agent of any of them. Unknown where explanation was not measured.

    Prosaic training is not listed: every base optimizer in mesascope trains on the base objective's
    outcomes only, so it holds.
    """
    facts = {
        Condition.NEEDS_TRAINING_OPTIMAL: properties["training_optimality"].state,
        Condition.NEEDS_OUTER_ALIGNMENT: properties["outer_alignment_hubinger"].state,
    }
    d = m.epic_behavioral_mesa_deploy
    facts[Condition.NEEDS_BEHAVIORAL_IS_MESA] = Truth.UNDEFINED if d is None else Truth.of(d <= thresholds.eps)
    if m.behavioral_explained is not None:
        facts[Condition.NEEDS_SUFFICIENT_AGENCY] = Truth.of(m.behavioral_explained)
    return facts


def evaluate_graphs(
    m: Measurements, properties: Mapping[str, PropertyResult], thresholds: Thresholds = Thresholds()
) -> dict[str, GraphEvaluation]:
    """Evaluate the consolidated, revised and collapsed graphs (SPEC.md section 6) on one system, once each."""
    values = graph_values(properties)
    facts = graph_facts(m, properties, thresholds)
    return {name: evaluate_graph(get_graph(name), values, has_mesa_optimizer=m.has_mesa_objective, facts=facts)
            for name in GRAPH_NAMES}


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
        "counterexample_paths": [path(p) for p in ev.paths if p.status.value == "counterexample"],
        "undetermined_paths": [path(p) for p in ev.paths if p.status.value == "undetermined"],
        "counterexamples": [check(c, "edge" if hasattr(c, "edge") else "implication") for c in ev.counterexamples],
        "notes": list(ev.notes),
    }


def graphs_block(m: Measurements, properties: Mapping[str, PropertyResult], thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
    """`{graph_name: {...}}` for audit.json."""
    return {name: _graph_json(ev) for name, ev in evaluate_graphs(m, properties, thresholds).items()}


@dataclass(frozen=True)
class Judgement:
    """One system judged under one set of thresholds (SPEC.md sections 5-7), every graph evaluated once.

    Attributes:
        measurements: What was measured.
        properties: name -> `PropertyResult`.
        evaluations: graph name -> `GraphEvaluation` (consolidated, revised, collapsed); the verdicts,
            the audit block and the drawings all read these.
        verdicts: school -> `Verdict`.
        invariants: The consistency checks (`wentworth_corollary`, `labels_established`).
    """

    measurements: Measurements
    properties: Mapping[str, PropertyResult]
    evaluations: Mapping[str, GraphEvaluation]
    verdicts: Mapping[str, Any]
    invariants: Mapping[str, Any]

    def to_entry(self) -> dict[str, Any]:
        """The JSON-ready block schema.md specifies: measurements, properties, graphs, verdicts, invariants."""
        return {
            "measurements": self.measurements.to_dict(),
            "properties": {name: r.to_dict() for name, r in self.properties.items()},
            "graphs": {name: _graph_json(ev) for name, ev in self.evaluations.items()},
            "verdicts": {school: v.to_dict() for school, v in self.verdicts.items()},
            "invariants": dict(self.invariants),
        }


def judge(m: Measurements, thresholds: Thresholds = Thresholds()) -> Judgement:
    """Properties, graphs (each evaluated once), every school's verdict and the invariants of one system."""
    props = compute_properties(m, thresholds)
    evaluations = evaluate_graphs(m, props, thresholds)
    verdicts = classify_failure(m, props, thresholds, evaluation=evaluations["revised"])
    contradictions = label_contradictions({
        "verdicts": {school: v.to_dict() for school, v in verdicts.items()},
        "properties": {n: r.to_dict() for n, r in props.items()},
        "graphs": {name: _graph_json(ev) for name, ev in evaluations.items()},
    })
    invariants = {
        "wentworth_corollary": wentworth_corollary(m, props, thresholds),
        "labels_established": {"holds": not contradictions, "contradictions": contradictions},
    }
    return Judgement(m, props, evaluations, verdicts, invariants)


def audit_entry(m: Measurements, thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
    """The JSON-ready block schema.md specifies for one system (`judge(m, thresholds).to_entry()`).

    Returns:
        `{"measurements", "properties", "graphs", "verdicts", "invariants"}`.
    """
    return judge(m, thresholds).to_entry()
