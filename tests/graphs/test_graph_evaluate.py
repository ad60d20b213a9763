"""Golden evaluations of the and-or graphs on hand-built runs (SPEC.md section 6)."""

from __future__ import annotations

import pytest

from mesascope.graphs import (
    CheckStatus,
    GraphError,
    PathStatus,
    PropertyValue,
    Truth,
    collapsed_graph,
    consolidated_graph,
    evaluate_graph,
    revised_graph,
)

H, F, U = Truth.HOLDS, Truth.FAILS, Truth.UNDEFINED
MESA_ONLY = ("inner_alignment", "intent_alignment", "inner_robustness")
ALL = (
    "behavioral_alignment",
    "outer_alignment",
    "on_distribution_alignment",
    "robustness",
    "capability_robustness",
    "objective_robustness",
    *MESA_ONLY,
)


def run(**states: Truth) -> dict[str, PropertyValue]:
    """Every section-5 property holds, except those given."""
    values = {p: PropertyValue(p, H, score=0.95, threshold=0.9) for p in ALL}
    for name, truth in states.items():
        values[name] = PropertyValue(name, truth)
    return values


def no_mesa(**states: Truth) -> dict[str, PropertyValue]:
    values = run(**states)
    for p in MESA_ONLY:
        values[p] = PropertyValue.undefined(p, "the system has no mesa-objective")
    return values


def by_name(evaluation):
    return {p.name: p for p in evaluation.paths}


def directions(evaluation):
    return {(c.implication.antecedent, c.implication.consequent): c.status for c in evaluation.implications}


# --- everything holds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("graph", [consolidated_graph(), revised_graph(), collapsed_graph()], ids=lambda g: g.name)
def test_everything_holds_both_paths_certify(graph):
    ev = evaluate_graph(graph, run(), has_mesa_optimizer=True)
    assert [p.name for p in ev.certifying_paths] == ["objective-focused", "generalization-focused"]
    assert all(p.breaks_at is None for p in ev.paths)
    assert all(c.status is CheckStatus.CONFIRMED for c in ev.edges)
    assert all(c.status is CheckStatus.CONFIRMED for c in ev.implications)
    assert all(s.measured is H and s.derived is H for s in ev.nodes)
    assert ev.counterexamples == ()
    assert ev.notes == ()


# --- outer alignment fails: only the generalization path -----------------------------------------------


def test_outer_fails_only_generalization_path_certifies():
    ev = evaluate_graph(revised_graph(), run(outer_alignment=F), has_mesa_optimizer=True)
    paths = by_name(ev)
    assert [p.name for p in ev.certifying_paths] == ["generalization-focused"]
    objective = paths["objective-focused"]
    assert objective.status is PathStatus.BROKEN
    assert objective.breaks_at == "outer_alignment" and objective.failing == ("outer_alignment",)
    assert objective.nodes == (
        ("inner_alignment", H),
        ("outer_alignment", F),
        ("intent_alignment", H),
        ("inner_robustness", H),
        ("behavioral_alignment", H),
    )
    assert set(paths["generalization-focused"].leaves) == {
        "capability_robustness",
        "objective_robustness",
        "on_distribution_alignment",
    }
    # The graph alone no longer establishes intent alignment, but still behavioral alignment (via red).
    assert ev.node("intent_alignment").measured is H and ev.node("intent_alignment").derived is F
    assert ev.node("behavioral_alignment").derived is H
    assert ev.edge("inner_alignment+outer_alignment->intent_alignment").status is CheckStatus.NOT_TESTED
    # On-distribution alignment without outer alignment: the direction the seed itself calls no implication.
    d = directions(ev)
    assert d[("on_distribution_alignment", "outer_alignment")] is CheckStatus.COUNTEREXAMPLE
    assert d[("outer_alignment", "on_distribution_alignment")] is CheckStatus.NOT_TESTED


def test_consolidated_outer_fails_breaks_both_paths():
    # In the consolidated graph both paths need outer alignment (seed 000: they only group differently).
    ev = evaluate_graph(consolidated_graph(), run(outer_alignment=F), has_mesa_optimizer=True)
    assert ev.certifying_paths == ()
    assert {p.breaks_at for p in ev.paths} == {"outer_alignment"}
    assert ev.node("behavioral_alignment").derived is F


# --- counterexamples -----------------------------------------------------------------------------------


def test_counterexample_edge_detected():
    ev = evaluate_graph(revised_graph(), run(robustness=F), has_mesa_optimizer=True)
    check = ev.edge("capability_robustness+objective_robustness->robustness")
    assert check.status is CheckStatus.COUNTEREXAMPLE
    assert check.antecedents == (("capability_robustness", H), ("objective_robustness", H))
    assert check.consequent is F
    assert [c.edge.id for c in ev.counterexamples] == [check.edge.id]
    assert ev.node("robustness").measured is F and ev.node("robustness").derived is H
    gen = by_name(ev)["generalization-focused"]
    assert gen.status is PathStatus.BROKEN and gen.breaks_at == "robustness"
    # Its downstream edge cannot be tested any more, and the other path still certifies.
    assert ev.edge("robustness+on_distribution_alignment->behavioral_alignment").status is CheckStatus.NOT_TESTED
    assert [p.name for p in ev.certifying_paths] == ["objective-focused"]


def test_path_breaks_at_the_first_failing_node_bottom_up():
    ev = evaluate_graph(revised_graph(), run(inner_robustness=F, outer_alignment=F), has_mesa_optimizer=True)
    objective = by_name(ev)["objective-focused"]
    assert objective.failing == ("outer_alignment", "inner_robustness")
    assert objective.breaks_at == "outer_alignment"


def test_counterexample_at_the_root():
    ev = evaluate_graph(revised_graph(), run(behavioral_alignment=F), has_mesa_optimizer=True)
    assert {c.edge.consequent for c in ev.counterexamples} == {"behavioral_alignment"}
    assert len(ev.counterexamples) == 2
    # The root failing is the failure being explained, never where a path breaks (SPEC.md section 6).
    assert all(p.status is PathStatus.COUNTEREXAMPLE and p.breaks_at is None and p.failing == () for p in ev.paths)


def test_counterexample_to_a_pseudo_equivalence_direction():
    ev = evaluate_graph(revised_graph(), run(capability_robustness=F), has_mesa_optimizer=True)
    d = directions(ev)
    assert d[("inner_robustness", "capability_robustness")] is CheckStatus.COUNTEREXAMPLE
    assert d[("capability_robustness", "inner_robustness")] is CheckStatus.NOT_TESTED


# --- no mesa-optimizer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("explicit", [True, False], ids=["given-undefined", "missing"])
def test_no_mesa_optimizer_undefined_not_failed(explicit):
    values = no_mesa() if explicit else {p: v for p, v in run().items() if p not in MESA_ONLY}
    ev = evaluate_graph(revised_graph(), values, has_mesa_optimizer=False)
    for p in MESA_ONLY:
        assert ev.node(p).measured is U
        assert ev.node(p).derived is U
    objective, generalization = by_name(ev)["objective-focused"], by_name(ev)["generalization-focused"]
    assert objective.status is PathStatus.UNDETERMINED  # not BROKEN: nothing failed
    assert objective.breaks_at == "inner_alignment" and objective.failing == ()
    assert generalization.status is PathStatus.CERTIFIES
    d = directions(ev)
    for key in [
        ("inner_robustness", "capability_robustness"),
        ("capability_robustness", "inner_robustness"),
        ("inner_alignment", "objective_robustness"),
        ("objective_robustness", "inner_alignment"),
    ]:
        assert d[key] is CheckStatus.NOT_APPLICABLE, key
    assert d[("outer_alignment", "on_distribution_alignment")] is CheckStatus.CONFIRMED
    assert d[("on_distribution_alignment", "outer_alignment")] is CheckStatus.CONFIRMED
    yellow = [c for c in ev.edges if c.edge.colour.value == "yellow"]
    assert yellow and all(c.status is CheckStatus.NOT_APPLICABLE for c in yellow)
    assert ev.counterexamples == ()


def test_no_mesa_optimizer_failing_outer_leaves_intent_undefined():
    # Kleene would make (undefined AND fails) fail; without a mesa-objective intent alignment stays undefined.
    ev = evaluate_graph(revised_graph(), no_mesa(outer_alignment=F), has_mesa_optimizer=False)
    assert ev.node("intent_alignment").derived is U


def test_no_mesa_optimizer_consolidated_generalization_path_needs_inner_alignment():
    # Seed 000's objection: drawn this way, the generalization path presupposes a mesa-objective.
    ev = evaluate_graph(consolidated_graph(), no_mesa(), has_mesa_optimizer=False)
    assert ev.certifying_paths == ()
    assert {p.status for p in ev.paths} == {PathStatus.UNDETERMINED}
    assert {p.breaks_at for p in ev.paths} == {"inner_alignment"}
    assert ev.edge("inner_alignment->objective_robustness").status is CheckStatus.NOT_APPLICABLE
    assert ev.node("objective_robustness").measured is H and ev.node("objective_robustness").derived is U


def test_mesa_only_value_without_mesa_optimizer_is_an_error():
    with pytest.raises(GraphError, match="no mesa-optimizer"):
        evaluate_graph(revised_graph(), run(inner_alignment=F), has_mesa_optimizer=False)


def test_with_mesa_optimizer_a_failing_inner_alignment_breaks_the_objective_path():
    ev = evaluate_graph(revised_graph(), run(inner_alignment=F), has_mesa_optimizer=True)
    assert by_name(ev)["objective-focused"].status is PathStatus.BROKEN
    assert by_name(ev)["objective-focused"].breaks_at == "inner_alignment"
    assert directions(ev)[("objective_robustness", "inner_alignment")] is CheckStatus.COUNTEREXAMPLE


def test_sufficient_agency_false_marks_agency_directions_not_applicable():
    ev = evaluate_graph(revised_graph(), run(), has_mesa_optimizer=True, has_sufficient_agency=False)
    d = directions(ev)
    assert d[("inner_alignment", "objective_robustness")] is CheckStatus.NOT_APPLICABLE
    assert d[("capability_robustness", "inner_robustness")] is CheckStatus.NOT_APPLICABLE
    assert d[("inner_robustness", "capability_robustness")] is CheckStatus.CONFIRMED


# --- schools, clusters, lookups ------------------------------------------------------------------------


def test_each_graph_reads_its_own_school():
    values = [v for p, v in run().items() if p != "objective_robustness"]
    values += [
        PropertyValue("objective_robustness", H, school="hubinger"),
        PropertyValue("objective_robustness", F, school="demski"),
    ]
    consolidated = evaluate_graph(consolidated_graph(), values, has_mesa_optimizer=True)
    revised = evaluate_graph(revised_graph(), values, has_mesa_optimizer=True)
    assert consolidated.node("objective_robustness").measured is H
    assert consolidated.node("objective_robustness").value.school == "hubinger"
    assert revised.node("objective_robustness").measured is F
    assert by_name(revised)["generalization-focused"].breaks_at == "objective_robustness"


def test_value_from_another_school_is_used_but_noted():
    values = run()
    values["objective_robustness"] = PropertyValue("objective_robustness", H, school="hubinger")
    ev = evaluate_graph(revised_graph(), values, has_mesa_optimizer=True)
    assert ev.node("objective_robustness").measured is H
    assert any("demski" in n and "hubinger" in n for n in ev.notes)


def test_missing_values_are_undefined():
    ev = evaluate_graph(revised_graph(), {}, has_mesa_optimizer=True)
    assert all(s.measured is U and s.value is None for s in ev.nodes)
    assert all(c.status is CheckStatus.NOT_TESTED for c in (*ev.edges, *ev.implications))
    assert all(p.status is PathStatus.UNDETERMINED for p in ev.paths)


def test_mislabelled_value_is_an_error():
    values = run()
    values["robustness"] = PropertyValue("capability_robustness", H)
    with pytest.raises(GraphError, match="robustness"):
        evaluate_graph(revised_graph(), values, has_mesa_optimizer=True)


def test_collapsed_graph_reads_clusters_per_approach():
    ev = evaluate_graph(collapsed_graph(), run(objective_robustness=F), has_mesa_optimizer=True)
    inner = ev.node("inner_cluster")
    assert inner.readings[0][1:] == ("inner_alignment", H)
    assert inner.readings[1][1:] == ("objective_robustness", F)
    assert inner.measured is U  # the two readings disagree
    assert any("inner_cluster" in n and "disagree" in n for n in ev.notes)
    paths = by_name(ev)
    assert paths["objective-focused"].status is PathStatus.CERTIFIES
    assert paths["generalization-focused"].status is PathStatus.BROKEN
    assert paths["generalization-focused"].breaks_at == "inner_cluster"
    assert ev.node("robustness").derived is F and ev.node("intent_alignment").derived is H


def test_collapsed_graph_without_mesa_optimizer():
    ev = evaluate_graph(collapsed_graph(), no_mesa(), has_mesa_optimizer=False)
    paths = by_name(ev)
    assert paths["generalization-focused"].status is PathStatus.CERTIFIES
    assert paths["objective-focused"].status is PathStatus.UNDETERMINED
    assert paths["objective-focused"].breaks_at == "inner_cluster"
    assert ev.edge("outer_cluster+inner_cluster->intent_alignment").status is CheckStatus.NOT_APPLICABLE
    assert ev.edge("inner_cluster+capabilities_cluster->robustness").status is CheckStatus.CONFIRMED


def test_evaluation_is_frozen_and_hashable():
    ev = evaluate_graph(revised_graph(), run(), has_mesa_optimizer=True)
    assert hash(ev) == hash(evaluate_graph(revised_graph(), run(), has_mesa_optimizer=True))
    with pytest.raises(AttributeError):
        ev.paths = ()  # type: ignore[misc]
    with pytest.raises(KeyError):
        ev.node("nope")


# --- operational edge conditions (SPEC.md section 6) ------------------------------------------------------


def test_outer_to_on_distribution_is_not_a_counterexample_for_an_untrained_system():
    from mesascope.graphs import Condition

    # Outer alignment holds but on-distribution alignment fails only because the system did not learn
    # its training levels: the direction is claimed for training-optimal systems only.
    values = run(on_distribution_alignment=F)
    trained = evaluate_graph(revised_graph(), values, has_mesa_optimizer=True,
                             facts={Condition.NEEDS_TRAINING_OPTIMAL: H})
    untrained = evaluate_graph(revised_graph(), values, has_mesa_optimizer=True,
                               facts={Condition.NEEDS_TRAINING_OPTIMAL: F})
    unknown = evaluate_graph(revised_graph(), values, has_mesa_optimizer=True,
                             facts={Condition.NEEDS_TRAINING_OPTIMAL: U})
    key = ("outer_alignment", "on_distribution_alignment")
    assert directions(trained)[key] is CheckStatus.COUNTEREXAMPLE
    assert directions(untrained)[key] is CheckStatus.NOT_APPLICABLE
    assert directions(unknown)[key] is CheckStatus.NOT_TESTED
    assert not any(c.implication.id == "outer_alignment=>on_distribution_alignment"
                   for c in untrained.counterexamples if hasattr(c, "implication"))


def test_inner_robustness_direction_needs_the_behavioral_objective_to_be_the_mesa_objective():
    from mesascope.graphs import Condition

    values = run(capability_robustness=F)
    other_goal = evaluate_graph(revised_graph(), values, has_mesa_optimizer=True,
                                facts={Condition.NEEDS_BEHAVIORAL_IS_MESA: F})
    same = evaluate_graph(revised_graph(), values, has_mesa_optimizer=True,
                          facts={Condition.NEEDS_BEHAVIORAL_IS_MESA: H})
    key = ("inner_robustness", "capability_robustness")
    assert directions(other_goal)[key] is CheckStatus.NOT_APPLICABLE
    assert directions(same)[key] is CheckStatus.COUNTEREXAMPLE


def test_every_edge_and_direction_declares_its_conditions():
    for graph in (consolidated_graph(), revised_graph(), collapsed_graph()):
        for edge in graph.edges:
            assert edge.reason and edge.requirement
        for imp in graph.implications:
            assert imp.reason and imp.requirement


def test_a_path_never_breaks_at_the_root():
    for graph in (consolidated_graph(), revised_graph(), collapsed_graph()):
        for states in (run(behavioral_alignment=F), no_mesa(behavioral_alignment=F), run(behavioral_alignment=F, robustness=F)):
            ev = evaluate_graph(graph, states, has_mesa_optimizer=graph is not None and "inner_alignment" in states
                                and states["inner_alignment"].truth is not U)
            for p in ev.paths:
                assert p.breaks_at != graph.root and graph.root not in p.failing
