"""The three graphs match SPEC.md section 6 and seed 000: edges, colours, pseudo-equivalence directions."""

from __future__ import annotations

import pytest

from mesascope.graphs import (
    GRAPH_NAMES,
    PROPERTIES,
    AndEdge,
    AndOrGraph,
    Approach,
    Colour,
    Condition,
    GraphError,
    Implication,
    Node,
    PseudoEquivalence,
    collapsed_graph,
    consolidated_graph,
    get_graph,
    revised_graph,
)

RED, YELLOW, BLUE = Colour.RED, Colour.YELLOW, Colour.BLUE
MESA, AGENCY, PROSAIC = (
    Condition.NEEDS_MESA_OPTIMIZER,
    Condition.NEEDS_SUFFICIENT_AGENCY,
    Condition.NEEDS_PROSAIC_TRAINING,
)
TRAINED, BEH_IS_MESA, OUTER = (
    Condition.NEEDS_TRAINING_OPTIMAL,
    Condition.NEEDS_BEHAVIORAL_IS_MESA,
    Condition.NEEDS_OUTER_ALIGNMENT,
)


def edge_set(graph):
    return {(frozenset(e.antecedents), e.consequent, e.colour) for e in graph.edges}


def test_section_5_properties_are_all_catalogued():
    assert set(PROPERTIES) == {
        "behavioral_alignment",
        "outer_alignment",
        "on_distribution_alignment",
        "robustness",
        "capability_robustness",
        "objective_robustness",
        "inner_alignment",
        "intent_alignment",
        "inner_robustness",
    }
    mesa_only = {p for p, info in PROPERTIES.items() if info.needs_mesa_objective}
    assert mesa_only == {"inner_alignment", "intent_alignment", "inner_robustness"}


def test_consolidated_graph_edges_and_colours():
    g = consolidated_graph()
    assert edge_set(g) == {
        (frozenset({"intent_alignment", "capability_robustness"}), "behavioral_alignment", YELLOW),
        (frozenset({"outer_alignment", "robustness"}), "behavioral_alignment", RED),
        (frozenset({"outer_alignment", "objective_robustness"}), "intent_alignment", YELLOW),
        (frozenset({"objective_robustness", "capability_robustness"}), "robustness", RED),
        (frozenset({"inner_alignment"}), "objective_robustness", BLUE),
    }
    (inner_edge,) = g.edges_into("objective_robustness")
    assert inner_edge.conditions == {MESA}
    assert g.equivalences == ()
    # Impact alignment is an OR of two and-edges.
    assert len(g.edges_into("behavioral_alignment")) == 2
    assert g.school_of("objective_robustness") == "hubinger"
    assert set(g.leaves) == {"outer_alignment", "capability_robustness", "inner_alignment"}


def test_revised_graph_edges_and_colours():
    g = revised_graph()
    assert edge_set(g) == {
        (frozenset({"inner_alignment", "outer_alignment"}), "intent_alignment", YELLOW),
        (frozenset({"intent_alignment", "inner_robustness"}), "behavioral_alignment", YELLOW),
        (frozenset({"capability_robustness", "objective_robustness"}), "robustness", RED),
        (frozenset({"robustness", "on_distribution_alignment"}), "behavioral_alignment", RED),
    }
    assert all(not e.conditions for e in g.edges)
    assert g.school_of("objective_robustness") == "demski"
    assert g.school_of("intent_alignment") == "demski"


def test_revised_graph_pseudo_equivalence_directions():
    g = revised_graph()
    pairs = {frozenset(eq.pair) for eq in g.equivalences}
    assert pairs == {
        frozenset({"inner_robustness", "capability_robustness"}),
        frozenset({"inner_alignment", "objective_robustness"}),
        frozenset({"on_distribution_alignment", "outer_alignment"}),
    }
    assert all(eq.colour is BLUE for eq in g.equivalences)
    directions = {(i.antecedent, i.consequent): i for i in g.implications}
    assert len(directions) == 6  # every direction kept separately
    expected = {
        ("inner_robustness", "capability_robustness"): {BEH_IS_MESA},
        ("capability_robustness", "inner_robustness"): {MESA, AGENCY, BEH_IS_MESA},
        ("inner_alignment", "objective_robustness"): {AGENCY, OUTER},
        ("objective_robustness", "inner_alignment"): {MESA, AGENCY, OUTER},
        ("outer_alignment", "on_distribution_alignment"): {TRAINED},
        ("on_distribution_alignment", "outer_alignment"): {PROSAIC},
    }
    for key, conditions in expected.items():
        assert directions[key].conditions == conditions, key
        assert directions[key].reason  # the seed's argument is recorded
    assert directions[("outer_alignment", "on_distribution_alignment")].requirement == "needs a training-optimal system"
    assert (
        directions[("capability_robustness", "inner_robustness")].requirement
        == "needs mesa-optimizer + needs sufficient agency + needs the behavioral objective to be the bridged mesa-objective"
    )


def test_collapsed_graph_clusters_and_groupings():
    g = collapsed_graph()
    readings = {n.id: dict(n.readings) for n in g.nodes if n.readings}
    o, gen = Approach.OBJECTIVE, Approach.GENERALIZATION
    assert readings == {
        "outer_cluster": {o: "outer_alignment", gen: "on_distribution_alignment"},
        "inner_cluster": {o: "inner_alignment", gen: "objective_robustness"},
        "capabilities_cluster": {o: "inner_robustness", gen: "capability_robustness"},
    }
    assert edge_set(g) == {
        # objective-focused: (outer + inner) + capabilities
        (frozenset({"outer_cluster", "inner_cluster"}), "intent_alignment", YELLOW),
        (frozenset({"intent_alignment", "capabilities_cluster"}), "behavioral_alignment", YELLOW),
        # generalization-focused: outer + (inner + capabilities)
        (frozenset({"inner_cluster", "capabilities_cluster"}), "robustness", RED),
        (frozenset({"robustness", "outer_cluster"}), "behavioral_alignment", RED),
    }
    assert set(g.leaves) == {"outer_cluster", "inner_cluster", "capabilities_cluster"}


@pytest.mark.parametrize("name", GRAPH_NAMES)
def test_each_graph_has_one_objective_and_one_generalization_path(name):
    g = get_graph(name)
    paths = list(g.iter_paths())
    assert len(paths) == 2
    colours = [{e.colour for e in p} - {BLUE} for p in paths]
    assert sorted(map(sorted, colours), key=str) == [[Colour.RED], [Colour.YELLOW]]
    for path in paths:
        assert path[0].consequent == g.root == "behavioral_alignment"
        # Every antecedent of the path is either a leaf or established by an edge of the same path.
        consequents = {e.consequent for e in path}
        for e in path:
            assert all(g.is_leaf(a) or a in consequents for a in e.antecedents)


@pytest.mark.parametrize("name", GRAPH_NAMES)
def test_graphs_are_frozen_hashable_and_cached(name):
    g = get_graph(name)
    assert get_graph(name) is g
    assert hash(g) == hash(get_graph(name))
    with pytest.raises(AttributeError):
        g.name = "other"  # type: ignore[misc]
    order = g.topological_order
    assert order[-1] == "behavioral_alignment" and set(order) == set(g.node_ids)
    for e in g.edges:
        assert all(order.index(a) < order.index(e.consequent) for a in e.antecedents)


def test_get_graph_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="consolidated, revised, collapsed"):
        get_graph("nope")


def test_graph_validation():
    a, b = Node("a", "a"), Node("behavioral_alignment", "b")
    with pytest.raises(GraphError, match="cycle"):
        AndOrGraph("x", "x", (a, b), (AndEdge(("a",), "behavioral_alignment", RED), AndEdge(("behavioral_alignment",), "a", RED)))
    with pytest.raises(GraphError, match="unknown node"):
        AndOrGraph("x", "x", (a, b), (AndEdge(("zzz",), "behavioral_alignment", RED),))
    with pytest.raises(GraphError, match="root"):
        AndOrGraph("x", "x", (a,), ())
    with pytest.raises(GraphError, match="not opposite"):
        PseudoEquivalence(Implication("a", "b"), Implication("a", "b"))
    cluster = Node("c", "c", readings=((Approach.OBJECTIVE, "outer_alignment"),))
    with pytest.raises(GraphError, match="not a leaf"):
        AndOrGraph("x", "x", (a, cluster, b), (AndEdge(("a",), "c", RED), AndEdge(("c",), "behavioral_alignment", RED)))
