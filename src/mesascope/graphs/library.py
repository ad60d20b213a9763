"""The three and-or graphs of seed `000_a6e1b8d5e803b8fe.txt`, as data (SPEC.md section 6).

* `consolidated_graph()`: Hubinger's objective-focused and generalization-focused pictures merged
  into one graph. Both paths need outer alignment, objective robustness and capability robustness; they
  only group them differently.
* `revised_graph()`: the seed's revision. The two paths now use partly different properties
  (on-distribution alignment and inner robustness appear), and three double arrows (pseudo-equivalences)
  link the properties that play the same role on the two paths.
* `collapsed_graph()`: the revised graph with each pseudo-equivalent pair merged into one cluster
  (outer, inner, capabilities). The objective-focused path groups them (outer + inner) + capabilities,
  the generalization-focused path outer + (inner + capabilities).

Every graph's root is `behavioral_alignment` (the seed's name for impact alignment). The functions are
pure and cached: they return the same frozen object on every call.
"""

from __future__ import annotations

from functools import cache

from mesascope.graphs.model import (
    AndEdge,
    AndOrGraph,
    Approach,
    Colour,
    Condition,
    Implication,
    Node,
    PseudoEquivalence,
)

__all__ = ["GRAPH_NAMES", "collapsed_graph", "consolidated_graph", "get_graph", "revised_graph"]

RED, YELLOW, BLUE = Colour.RED, Colour.YELLOW, Colour.BLUE
MESA = Condition.NEEDS_MESA_OPTIMIZER
AGENCY = Condition.NEEDS_SUFFICIENT_AGENCY
PROSAIC = Condition.NEEDS_PROSAIC_TRAINING
TRAINED = Condition.NEEDS_TRAINING_OPTIMAL
BEH_IS_MESA = Condition.NEEDS_BEHAVIORAL_IS_MESA
OUTER = Condition.NEEDS_OUTER_ALIGNMENT


@cache
def consolidated_graph() -> AndOrGraph:
    """Hubinger's two approaches in one and-or graph (SPEC.md section 6, seed 000's first diagram).

    Behavioral (impact) alignment follows from intent alignment AND capability robustness (objective-
    focused, yellow) or from outer alignment AND robustness (generalization-focused, red). Intent
    alignment needs outer alignment AND objective robustness (yellow); robustness needs objective
    robustness AND capability robustness (red); and inner alignment gives objective robustness when there
    is a mesa-optimizer (blue: both approaches draw it). The graph reads Hubinger's definitions of
    objective robustness and intent alignment.

    Returns:
        The graph; it has no pseudo-equivalences.
    """
    nodes = tuple(
        Node.of(p)
        for p in (
            "behavioral_alignment",
            "intent_alignment",
            "robustness",
            "outer_alignment",
            "objective_robustness",
            "capability_robustness",
            "inner_alignment",
        )
    )
    edges = (
        AndEdge(
            ("intent_alignment", "capability_robustness"),
            "behavioral_alignment",
            YELLOW,
            "A system that wants what we want and competently gets what it wants, everywhere, behaves well.",
        ),
        AndEdge(
            ("outer_alignment", "robustness"),
            "behavioral_alignment",
            RED,
            "If the base objective is aligned and the system scores well on it everywhere, it behaves well.",
        ),
        AndEdge(
            ("outer_alignment", "objective_robustness"),
            "intent_alignment",
            YELLOW,
            "The behavioral objective tracks the base objective, which tracks what humans want.",
        ),
        AndEdge(
            ("objective_robustness", "capability_robustness"),
            "robustness",
            RED,
            "Pursuing, competently and everywhere, a goal that matches the base objective scores well on it.",
        ),
        AndEdge(
            ("inner_alignment",),
            "objective_robustness",
            BLUE,
            "A mesa-objective aligned with the base objective makes the behaviour track the base objective; "
            "only meaningful when there is a mesa-optimizer.",
            frozenset({MESA}),
        ),
    )
    return AndOrGraph(
        name="consolidated",
        title="Consolidated graph (objective- and generalization-focused)",
        nodes=nodes,
        edges=edges,
        schools=(("objective_robustness", "hubinger"), ("intent_alignment", "hubinger")),
    )


def _revised_pseudo_equivalences() -> tuple[PseudoEquivalence, ...]:
    return (
        PseudoEquivalence(
            Implication(
                "inner_robustness",
                "capability_robustness",
                frozenset({BEH_IS_MESA}),
                "The mesa-objective is itself a goal the system achieves across deployment, so some "
                "behavioral objective is; inner robustness only says which one. As measured, capability "
                "robustness scores the behavioral objective, so the direction is claimed only where that is "
                "the bridged mesa-objective (EPIC <= eps).",
            ),
            Implication(
                "capability_robustness",
                "inner_robustness",
                frozenset({MESA, AGENCY, BEH_IS_MESA}),
                "Robust competence at some goal says nothing about a mesa-objective unless there is one, "
                "and then only an agentic enough system would robustly pursue its own objective and no other; "
                "as measured, only where the behavioral objective is the bridged mesa-objective.",
            ),
        ),
        PseudoEquivalence(
            Implication(
                "inner_alignment",
                "objective_robustness",
                frozenset({AGENCY, OUTER}),
                "Hubinger's direction: it needs a system capable enough that its behavioral objective "
                "matches its mesa-objective even under distributional shift. The revised graph reads Demski's "
                "objective robustness (J_int >= tau_acc), so agreeing with the base objective yields acceptable "
                "intended behaviour only where the base objective is outer aligned.",
            ),
            Implication(
                "objective_robustness",
                "inner_alignment",
                frozenset({MESA, AGENCY, OUTER}),
                "Behaviour that tracks the base objective broadly leaves little room for a misaligned "
                "mesa-objective, if there is a mesa-objective and the system is agentic enough; read off "
                "J_int, it speaks of the base objective only where that is outer aligned.",
            ),
        ),
        PseudoEquivalence(
            Implication(
                "on_distribution_alignment",
                "outer_alignment",
                frozenset({PROSAIC}),
                "Not an implication: on-distribution alignment leaves the base objective free off-"
                "distribution. The arrow stands because, under prosaic training, the base objective acts "
                "only through training, so its off-distribution part should not matter.",
            ),
            Implication(
                "outer_alignment",
                "on_distribution_alignment",
                frozenset({TRAINED}),
                "Trivial: aligned everywhere includes aligned on the training distribution. As measured, "
                "on-distribution alignment also asks the trained system to do well on training, so the "
                "direction is claimed only for a training-optimal system (gap <= delta).",
            ),
        ),
    )


@cache
def revised_graph() -> AndOrGraph:
    """The seed's revised joint graph (SPEC.md section 6, seed 000's second diagram).

    Objective-focused (yellow): inner alignment AND outer alignment give intent alignment (alignment is
    transitive); intent alignment AND inner robustness give behavioral alignment. Generalization-focused
    (red): capability robustness AND objective robustness give robustness; robustness AND on-distribution
    alignment give behavioral alignment. Three blue double arrows link inner robustness with capability
    robustness, inner alignment with objective robustness, and on-distribution alignment with outer
    alignment; each direction carries its own conditions (see `PseudoEquivalence`).

    The graph reads Demski's definitions: objective robustness is the revised "the behavioral objective
    generalises acceptably", intent alignment is "the mesa-objective is aligned with humans". An edge that
    fails under these definitions is reported as a counterexample (a finding about the graph).

    Returns:
        The graph.
    """
    nodes = tuple(
        Node.of(p)
        for p in (
            "behavioral_alignment",
            "intent_alignment",
            "robustness",
            "outer_alignment",
            "on_distribution_alignment",
            "inner_alignment",
            "objective_robustness",
            "inner_robustness",
            "capability_robustness",
        )
    )
    edges = (
        AndEdge(
            ("inner_alignment", "outer_alignment"),
            "intent_alignment",
            YELLOW,
            "Alignment is transitive: mesa-objective ~ base objective ~ human intent.",
        ),
        AndEdge(
            ("intent_alignment", "inner_robustness"),
            "behavioral_alignment",
            YELLOW,
            "A system that wants the right thing and reliably achieves what it wants behaves well.",
        ),
        AndEdge(
            ("capability_robustness", "objective_robustness"),
            "robustness",
            RED,
            "Competent pursuit of a behavioral objective that matches the base objective everywhere "
            "scores well on the base objective everywhere.",
        ),
        AndEdge(
            ("robustness", "on_distribution_alignment"),
            "behavioral_alignment",
            RED,
            "Aligned on the training distribution and generalising well: aligned in general.",
        ),
    )
    return AndOrGraph(
        name="revised",
        title="Revised graph (with pseudo-equivalences)",
        nodes=nodes,
        edges=edges,
        equivalences=_revised_pseudo_equivalences(),
        schools=(("objective_robustness", "demski"), ("intent_alignment", "demski")),
    )


@cache
def collapsed_graph() -> AndOrGraph:
    """The revised graph with pseudo-equivalent properties merged into clusters (SPEC.md section 6).

    Clusters and how each approach reads them (seed 000's table):

    | cluster | objective-focused | generalization-focused |
    |---|---|---|
    | outer | outer alignment | on-distribution alignment |
    | inner | inner alignment (a mesa-objective exists and is aligned) | objective robustness |
    | capabilities | inner robustness | capability robustness |

    Objective-focused grouping (yellow): (outer AND inner) give intent alignment, which AND capabilities
    give behavioral alignment. Generalization-focused grouping (red): (inner AND capabilities) give
    robustness, which AND outer give behavioral alignment. When evaluated, a yellow edge reads each
    cluster as its objective-focused property and a red edge as its generalization-focused property.

    Returns:
        The graph; it has no pseudo-equivalences (they are what was collapsed).
    """
    o, g = Approach.OBJECTIVE, Approach.GENERALIZATION
    nodes = (
        Node.of("behavioral_alignment"),
        Node(
            "intent_alignment",
            "intent alignment",
            "Objective-focused grouping (outer + inner): the mesa-objective is aligned with humans.",
            needs_mesa_objective=True,
        ),
        Node(
            "robustness",
            "robustness",
            "Generalization-focused grouping (inner + capabilities): good base-objective performance "
            "across deployment.",
        ),
        Node(
            "outer_cluster",
            "outer cluster",
            "The base objective matches human intent everywhere (objective-focused) / on the training "
            "distribution (generalization-focused).",
            readings=((o, "outer_alignment"), (g, "on_distribution_alignment")),
        ),
        Node(
            "inner_cluster",
            "inner cluster",
            "The system has a mesa-objective that agrees with the base objective (objective-focused) / its "
            "behavioral objective agrees with the base objective robustly (generalization-focused).",
            readings=((o, "inner_alignment"), (g, "objective_robustness")),
        ),
        Node(
            "capabilities_cluster",
            "capabilities cluster",
            "Competent pursuit of the mesa-objective (objective-focused) / of the behavioral objective "
            "(generalization-focused) across many situations.",
            readings=((o, "inner_robustness"), (g, "capability_robustness")),
        ),
    )
    edges = (
        AndEdge(
            ("outer_cluster", "inner_cluster"),
            "intent_alignment",
            YELLOW,
            "Objective-focused grouping: outer + inner first.",
        ),
        AndEdge(
            ("intent_alignment", "capabilities_cluster"),
            "behavioral_alignment",
            YELLOW,
            "Objective-focused grouping: (outer + inner) + capabilities.",
        ),
        AndEdge(
            ("inner_cluster", "capabilities_cluster"),
            "robustness",
            RED,
            "Generalization-focused grouping: inner + capabilities first.",
        ),
        AndEdge(
            ("robustness", "outer_cluster"),
            "behavioral_alignment",
            RED,
            "Generalization-focused grouping: outer + (inner + capabilities).",
        ),
    )
    return AndOrGraph(
        name="collapsed",
        title="Collapsed graph (outer / inner / capabilities clusters)",
        nodes=nodes,
        edges=edges,
        schools=(("objective_robustness", "demski"), ("intent_alignment", "demski")),
    )


GRAPH_NAMES: tuple[str, ...] = ("consolidated", "revised", "collapsed")


def get_graph(name: str) -> AndOrGraph:
    """The library graph called `name` (one of `GRAPH_NAMES`).

    Raises:
        KeyError: with the known names, if `name` is not one of them.
    """
    factories = {"consolidated": consolidated_graph, "revised": revised_graph, "collapsed": collapsed_graph}
    if name not in factories:
        raise KeyError(f"no graph {name!r}; known graphs: {', '.join(GRAPH_NAMES)}")
    return factories[name]()
