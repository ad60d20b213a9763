"""The alignment and-or graphs of seed 000 as data, their evaluation on a run, and their rendering.

SPEC.md section 6: three graphs (`consolidated_graph`, `revised_graph`, `collapsed_graph`) built from
frozen nodes, coloured and-edges and two-directional pseudo-equivalences; `evaluate_graph` checks every
node, edge, direction and path against one run's `PropertyValue`s, in three-valued (Kleene) logic;
`to_dot` and `render_svg` draw them.

Examples:
    >>> from mesascope.graphs import PropertyValue, Truth, evaluate_graph, revised_graph
    >>> g = revised_graph()
    >>> values = {p: PropertyValue(p, Truth.HOLDS) for p in g.node_ids}
    >>> values["outer_alignment"] = PropertyValue("outer_alignment", Truth.FAILS)
    >>> [p.name for p in evaluate_graph(g, values, has_mesa_optimizer=True).certifying_paths]
    ['generalization-focused']
"""

from mesascope.graphs.evaluate import (
    CheckStatus,
    EdgeCheck,
    GraphEvaluation,
    ImplicationCheck,
    NodeState,
    PathCheck,
    PathStatus,
    evaluate_graph,
)
from mesascope.graphs.library import GRAPH_NAMES, collapsed_graph, consolidated_graph, get_graph, revised_graph
from mesascope.graphs.model import (
    PROPERTIES,
    AndEdge,
    AndOrGraph,
    Approach,
    Colour,
    Condition,
    Implication,
    Node,
    PropertyInfo,
    PseudoEquivalence,
)
from mesascope.graphs.render import RenderResult, render_svg, to_dot
from mesascope.graphs.truth import GraphError, PropertyValue, Truth, index_values, kleene_and, kleene_or

__all__ = [
    "GRAPH_NAMES",
    "PROPERTIES",
    "AndEdge",
    "AndOrGraph",
    "Approach",
    "CheckStatus",
    "Colour",
    "Condition",
    "EdgeCheck",
    "GraphError",
    "GraphEvaluation",
    "Implication",
    "ImplicationCheck",
    "Node",
    "NodeState",
    "PathCheck",
    "PathStatus",
    "PropertyInfo",
    "PropertyValue",
    "PseudoEquivalence",
    "RenderResult",
    "Truth",
    "collapsed_graph",
    "consolidated_graph",
    "evaluate_graph",
    "get_graph",
    "index_values",
    "kleene_and",
    "kleene_or",
    "render_svg",
    "revised_graph",
    "to_dot",
]
