"""Evaluate an and-or graph against one run's property values (SPEC.md section 6).

`evaluate_graph` reports, for one run:

* every node's **measured** state (read from the values; a missing value is undefined) and its
  **derived** state: what the graph's and-edges imply from the leaves alone, with Kleene logic (a node
  is the OR over its and-edges, each edge the AND over its antecedents). A derived "fails" means the
  graph cannot establish the node from these leaves, not that the node is false: and-edges state
  sufficient conditions only;
* every **edge check**: antecedents all hold and the consequent fails is a *counterexample* to the graph
  as operationalised (a finding about the graph, not a bug); antecedents hold and consequent holds is
  *confirmed*; anything else is *not tested*. An edge whose declared condition is known to fail (no
  mesa-optimizer, a system that is not training-optimal, ...) is *not applicable*, one whose condition
  is unknown is *not tested*: data where a condition fails is never a counterexample (SPEC.md section 6);
* the same check for each **direction** of each pseudo-equivalence, separately;
* every **path** (a choice of one and-edge per needed node, from the leaves up to behavioral alignment)
  with whether it certifies behavioral alignment (every node below the root holds and the root does not
  fail), where it breaks (the first failing node *below* the root: the root failing is the failure being
  explained, never a break), or whether it is a counterexample (every node below the root holds, the root
  fails).

Why undefined is never read as failure: seed `000_a6e1b8d5e803b8fe.txt` points out that the mesa-objective
properties only mean something when a mesa-objective exists. A system without one is therefore reported
with those nodes undefined and the directions that need one not applicable, and a path through them as
undetermined, never as broken by an "inner alignment failure".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from mesascope.graphs.model import (
    PROPERTIES,
    AndEdge,
    AndOrGraph,
    Approach,
    Condition,
    Implication,
)
from mesascope.graphs.truth import GraphError, PropertyValue, Truth, index_values, kleene_and, kleene_or

__all__ = [
    "CheckStatus",
    "EdgeCheck",
    "GraphEvaluation",
    "ImplicationCheck",
    "NodeState",
    "PathCheck",
    "PathStatus",
    "evaluate_graph",
]


class CheckStatus(Enum):
    """The outcome of checking one and-edge or one pseudo-equivalence direction against a run."""

    CONFIRMED = "confirmed"
    COUNTEREXAMPLE = "counterexample"
    NOT_TESTED = "not tested"
    NOT_APPLICABLE = "not applicable"


class PathStatus(Enum):
    """Whether a path certifies behavioral alignment on a run."""

    CERTIFIES = "certifies"
    BROKEN = "broken"
    COUNTEREXAMPLE = "counterexample"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class NodeState:
    """One node's state on one run.

    Attributes:
        node: The node id.
        measured: The state read from the property values (UNDEFINED if missing). For a cluster of the
            collapsed graph without a value of its own: its readings' common state, or UNDEFINED when
            they differ.
        derived: What the graph's and-edges imply from the leaves (equal to `measured` for a leaf).
        value: The property value read, if any (its `school` says whose definition it is).
        readings: For clusters only: `(approach, property, state)` for each approach's reading.
    """

    node: str
    measured: Truth
    derived: Truth
    value: PropertyValue | None = None
    readings: tuple[tuple[Approach, str, Truth], ...] = ()

    @property
    def score(self) -> float | None:
        """The measured score, if a value with a score was read."""
        return None if self.value is None else self.value.score

    def via(self, approach: Approach | None) -> Truth:
        """The measured state as `approach` reads this node (a cluster's reading, else `measured`)."""
        for candidate, _, truth in self.readings:
            if candidate is approach:
                return truth
        return self.measured


@dataclass(frozen=True)
class EdgeCheck:
    """One and-edge checked against a run.

    Attributes:
        edge: The and-edge.
        status: confirmed / counterexample / not tested / not applicable.
        antecedents: `(node, state)` for each antecedent, as the edge's approach reads it.
        consequent: The consequent's measured state.
        reason: Why it has this status, in one line.
    """

    edge: AndEdge
    status: CheckStatus
    antecedents: tuple[tuple[str, Truth], ...]
    consequent: Truth
    reason: str


@dataclass(frozen=True)
class ImplicationCheck:
    """One direction of a pseudo-equivalence checked against a run.

    Attributes:
        implication: The direction (with its conditions and the seed's reason).
        status: confirmed / counterexample / not tested / not applicable.
        antecedent: The antecedent's measured state.
        consequent: The consequent's measured state.
        reason: Why it has this status, in one line.
    """

    implication: Implication
    status: CheckStatus
    antecedent: Truth
    consequent: Truth
    reason: str


@dataclass(frozen=True)
class PathCheck:
    """One path from the leaves up to the root, checked against a run.

    Attributes:
        edges: The path's and-edges, root first.
        approach: The approach all its edges belong to, or `None` if it mixes red and yellow edges or
            uses only blue ones.
        nodes: `(node, state)` for every node on the path, leaves before the nodes they support
            (post-order), as the path's approach reads them.
        status: certifies (every node below the root holds, the root does not fail), broken (a node
            below the root fails), counterexample (every node below the root holds, the root fails) or
            undetermined (none below the root fails but some is undefined, or an edge is not applicable).
        breaks_at: The first failing node below the root in `nodes` order; if none fails, the first
            undefined one; `None` when the path certifies or is a counterexample. Never the root.
        failing: Every failing node below the root, in `nodes` order.
        undefined: Every undefined node below the root, in `nodes` order.
    """

    edges: tuple[AndEdge, ...]
    approach: Approach | None
    nodes: tuple[tuple[str, Truth], ...]
    status: PathStatus
    breaks_at: str | None
    failing: tuple[str, ...]
    undefined: tuple[str, ...]

    @property
    def name(self) -> str:
        """`"objective-focused"`, `"generalization-focused"`, `"mixed"` or `"shared"`."""
        if self.approach is not None:
            return self.approach.value
        return "shared" if all(len(e.colour.approaches) == 2 for e in self.edges) else "mixed"

    @property
    def leaves(self) -> tuple[str, ...]:
        """The path's leaves (nodes no edge of the path establishes), in `nodes` order."""
        consequents = {e.consequent for e in self.edges}
        return tuple(n for n, _ in self.nodes if n not in consequents)


@dataclass(frozen=True)
class GraphEvaluation:
    """Everything `evaluate_graph` found for one graph on one run.

    Attributes:
        graph: The graph evaluated.
        has_mesa_optimizer: Whether the system was declared to have a mesa-optimizer.
        nodes: One `NodeState` per node, in the graph's display order.
        edges: One `EdgeCheck` per and-edge, in the graph's order.
        implications: One `ImplicationCheck` per pseudo-equivalence direction.
        paths: One `PathCheck` per path to the root.
        notes: Anything the reader should know (a value from another school than the graph reads, a
            cluster whose two readings disagree).
    """

    graph: AndOrGraph
    has_mesa_optimizer: bool
    nodes: tuple[NodeState, ...]
    edges: tuple[EdgeCheck, ...]
    implications: tuple[ImplicationCheck, ...]
    paths: tuple[PathCheck, ...]
    notes: tuple[str, ...] = ()

    def node(self, node_id: str) -> NodeState:
        """The state of node `node_id`."""
        for state in self.nodes:
            if state.node == node_id:
                return state
        raise KeyError(f"graph {self.graph.name!r} has no node {node_id!r}")

    def edge(self, edge_id: str) -> EdgeCheck:
        """The check of the and-edge with id `edge_id` (e.g. `"robustness+on_distribution_alignment->behavioral_alignment"`)."""
        for check in self.edges:
            if check.edge.id == edge_id:
                return check
        raise KeyError(f"graph {self.graph.name!r} has no edge {edge_id!r}")

    def implication(self, antecedent: str, consequent: str) -> ImplicationCheck:
        """The check of the pseudo-equivalence direction `antecedent => consequent`."""
        for check in self.implications:
            if (check.implication.antecedent, check.implication.consequent) == (antecedent, consequent):
                return check
        raise KeyError(f"graph {self.graph.name!r} has no direction {antecedent} => {consequent}")

    @property
    def certifying_paths(self) -> tuple[PathCheck, ...]:
        """The paths that certify behavioral alignment on this run."""
        return tuple(p for p in self.paths if p.status is PathStatus.CERTIFIES)

    @property
    def counterexamples(self) -> tuple[EdgeCheck | ImplicationCheck, ...]:
        """Every edge and direction whose antecedents hold but whose consequent fails."""
        found: list[EdgeCheck | ImplicationCheck] = [c for c in self.edges if c.status is CheckStatus.COUNTEREXAMPLE]
        found += [c for c in self.implications if c.status is CheckStatus.COUNTEREXAMPLE]
        return tuple(found)


def _check(antecedents: tuple[tuple[str, Truth], ...], consequent: Truth) -> tuple[CheckStatus, str]:
    failing = [n for n, t in antecedents if t is Truth.FAILS]
    if failing:
        return CheckStatus.NOT_TESTED, f"antecedent {', '.join(failing)} fails"
    undefined = [n for n, t in antecedents if t is Truth.UNDEFINED]
    if undefined:
        return CheckStatus.NOT_TESTED, f"antecedent {', '.join(undefined)} undefined"
    if consequent is Truth.HOLDS:
        return CheckStatus.CONFIRMED, "antecedents hold and the consequent holds"
    if consequent is Truth.FAILS:
        return CheckStatus.COUNTEREXAMPLE, "antecedents hold but the consequent fails"
    return CheckStatus.NOT_TESTED, "antecedents hold but the consequent is undefined"


def evaluate_graph(
    graph: AndOrGraph,
    values: Mapping[str, PropertyValue] | Iterable[PropertyValue],
    *,
    has_mesa_optimizer: bool,
    has_sufficient_agency: bool | None = None,
    facts: Mapping[Condition, Truth] | None = None,
) -> GraphEvaluation:
    """Evaluate every node, edge, pseudo-equivalence direction and path of `graph` on one run.

    Values are looked up by property id. Where the graph reads one school's definition (see
    `AndOrGraph.schools`) the key `"property/school"` is tried first, then the bare `"property"`;
    `index_values` builds such a mapping from a list of values. See the module docstring for what each
    part of the result means (SPEC.md section 6, seed 000).

    Args:
        graph: A graph, e.g. `revised_graph()`.
        values: Property values keyed by id, or an iterable of values (indexed with `index_values`).
        has_mesa_optimizer: Whether the system has a mesa-optimizer. Without one, the mesa-objective
            properties are undefined, and every edge or direction that involves them or needs a
            mesa-optimizer is not applicable.
        has_sufficient_agency: Whether the system is agentic enough for the directions that need it.
            `None` (unknown, the default) checks them as usual; `False` marks them not applicable.
        facts: The state of each condition on this run (`Condition` -> `Truth`): FAILS makes an edge
            that needs it not applicable, UNDEFINED makes it not tested. A condition missing here is
            assumed to hold, except the mesa-optimizer (from `has_mesa_optimizer`) and agency (from
            `has_sufficient_agency`); `facts` wins where both are given.

    Returns:
        A frozen `GraphEvaluation`.

    Raises:
        GraphError: if a value's name does not match its key, or a mesa-objective property is given as
            holding or failing for a system declared to have no mesa-optimizer.

    Examples:
        >>> from mesascope.graphs import revised_graph
        >>> values = {p: PropertyValue(p, Truth.HOLDS) for p in revised_graph().node_ids}
        >>> result = evaluate_graph(revised_graph(), values, has_mesa_optimizer=True)
        >>> [p.name for p in result.certifying_paths]
        ['objective-focused', 'generalization-focused']
    """
    if not isinstance(values, Mapping):
        values = index_values(values)
    notes: list[str] = []

    def needs_mesa(prop: str) -> bool:
        info = PROPERTIES.get(prop)
        if info is not None:
            return info.needs_mesa_objective
        return any(n.id == prop and n.needs_mesa_objective for n in graph.nodes)

    def lookup(prop: str) -> tuple[Truth, PropertyValue | None]:
        school = graph.school_of(prop)
        value = values.get(f"{prop}/{school}") if school else None
        if value is None:
            value = values.get(prop)
        if value is None:
            return Truth.UNDEFINED, None
        if value.name != prop:
            raise GraphError(f"the value stored under {prop!r} is for property {value.name!r}")
        if school and value.school and value.school != school:
            notes.append(f"{graph.name} graph reads {school}'s {prop} but was given {value.school}'s")
        if not has_mesa_optimizer and needs_mesa(prop) and value.truth is not Truth.UNDEFINED:
            raise GraphError(
                f"{prop} is {value.truth.value} for a system declared to have no mesa-optimizer; it is "
                "only defined when there is a mesa-objective (seed 000): give it as undefined, or pass "
                "has_mesa_optimizer=True"
            )
        return value.truth, value

    # Measured states.
    measured: dict[str, NodeState] = {}
    for node in graph.nodes:
        truth, value = lookup(node.id)
        readings = tuple((approach, prop, lookup(prop)[0]) for approach, prop in node.readings)
        if readings and value is None:
            states = {t for _, _, t in readings}
            truth = states.pop() if len(states) == 1 else Truth.UNDEFINED
            if {Truth.HOLDS, Truth.FAILS} <= {t for _, _, t in readings}:
                detail = ", ".join(f"{p} {t.value}" for _, p, t in readings)
                notes.append(f"{node.id}: its readings disagree ({detail}); the collapse does not hold here")
        measured[node.id] = NodeState(node.id, truth, truth, value, readings)

    def involves_mesa(names: Iterable[str], approach: Approach | None) -> bool:
        for name in names:
            node = graph.node(name)
            prop = node.reading(approach) if approach is not None and node.readings else None
            if needs_mesa(prop or name):
                return True
        return False

    known: dict[Condition, Truth] = {Condition.NEEDS_MESA_OPTIMIZER: Truth.of(has_mesa_optimizer)}
    if has_sufficient_agency is False:
        known[Condition.NEEDS_SUFFICIENT_AGENCY] = Truth.FAILS
    known.update(facts or {})

    def blocked(names: tuple[str, ...], conditions: frozenset[Condition], approach: Approach | None) -> tuple[CheckStatus, str] | None:
        """Not applicable (a condition fails) or not tested (a condition is unknown), else None."""
        if not has_mesa_optimizer and (Condition.NEEDS_MESA_OPTIMIZER in conditions or involves_mesa(names, approach)):
            return CheckStatus.NOT_APPLICABLE, "needs a mesa-optimizer and the system has none"
        order = list(Condition)
        for c in sorted(conditions, key=order.index):
            state = known.get(c, Truth.HOLDS)
            if state is Truth.FAILS:
                return CheckStatus.NOT_APPLICABLE, f"{c.value} and the condition fails on this system"
            if state is Truth.UNDEFINED:
                return CheckStatus.NOT_TESTED, f"{c.value} and the condition is undetermined on this system"
        return None

    # Derived states, leaves first.
    derived: dict[str, Truth] = {}
    for node_id in graph.topological_order:
        alternatives = graph.edges_into(node_id)
        if not alternatives:
            derived[node_id] = measured[node_id].measured
            continue
        options = []
        for edge in alternatives:
            if blocked((*edge.antecedents, edge.consequent), edge.conditions, edge.colour.approach):
                options.append(Truth.UNDEFINED)
                continue
            inputs = (
                measured[a].via(edge.colour.approach) if graph.is_leaf(a) else derived[a] for a in edge.antecedents
            )
            options.append(kleene_and(inputs))
        derived[node_id] = kleene_or(options)
    node_states = tuple(
        NodeState(s.node, s.measured, derived[s.node], s.value, s.readings)
        for s in (measured[n] for n in graph.node_ids)
    )

    # Edge checks.
    edge_checks = []
    for edge in graph.edges:
        approach = edge.colour.approach
        antecedents = tuple((a, measured[a].via(approach)) for a in edge.antecedents)
        consequent = measured[edge.consequent].via(approach)
        status, reason = blocked((*edge.antecedents, edge.consequent), edge.conditions, approach) or _check(antecedents, consequent)
        edge_checks.append(EdgeCheck(edge, status, antecedents, consequent, reason))

    # Pseudo-equivalence directions, each on its own.
    implication_checks = []
    for imp in graph.implications:
        antecedent = measured[imp.antecedent].measured
        consequent = measured[imp.consequent].measured
        status, reason = blocked((imp.antecedent, imp.consequent), imp.conditions, None) or _check(
            ((imp.antecedent, antecedent),), consequent)
        implication_checks.append(ImplicationCheck(imp, status, antecedent, consequent, reason))

    # Paths to the root.
    path_checks = []
    for edges in graph.iter_paths():
        shared = set(Approach)
        for edge in edges:
            shared &= set(edge.colour.approaches)
        approach = shared.pop() if len(shared) == 1 else None
        chosen = {e.consequent: e for e in edges}
        order: list[str] = []

        def visit(node_id: str) -> None:
            if node_id in order:
                return
            if node_id in chosen:
                for a in chosen[node_id].antecedents:
                    visit(a)
            order.append(node_id)

        visit(graph.root)
        states = tuple((n, measured[n].via(approach)) for n in order)
        # The root's failure is what a path explains, never where it breaks (SPEC.md section 6).
        below = tuple((n, t) for n, t in states if n != graph.root)
        failing = tuple(n for n, t in below if t is Truth.FAILS)
        undefined = tuple(n for n, t in below if t is Truth.UNDEFINED)
        stopped = [
            e.consequent
            for e in reversed(edges)
            if blocked((*e.antecedents, e.consequent), e.conditions, e.colour.approach)
        ]
        if failing:
            status, breaks_at = PathStatus.BROKEN, failing[0]
        elif undefined or stopped:
            status, breaks_at = PathStatus.UNDETERMINED, (undefined or stopped)[0]
        elif measured[graph.root].via(approach) is Truth.FAILS:
            status, breaks_at = PathStatus.COUNTEREXAMPLE, None
        else:
            status, breaks_at = PathStatus.CERTIFIES, None
        path_checks.append(PathCheck(edges, approach, states, status, breaks_at, failing, undefined))

    return GraphEvaluation(
        graph=graph,
        has_mesa_optimizer=has_mesa_optimizer,
        nodes=node_states,
        edges=tuple(edge_checks),
        implications=tuple(implication_checks),
        paths=tuple(path_checks),
        notes=tuple(dict.fromkeys(notes)),
    )
