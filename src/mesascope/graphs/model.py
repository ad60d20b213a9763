"""And-or graphs of alignment properties as frozen data (SPEC.md section 6, seed 000).

An and-or graph says which sets of properties are *jointly sufficient* for another. Seed
`000_a6e1b8d5e803b8fe.txt` draws them with an arc joining the lines of each sufficient set; here each set
is one `AndEdge`, and a consequent reached by several and-edges is the OR over them. Every edge is
coloured by the approach it belongs to:

* `red`: only the generalization-focused approach uses it;
* `yellow`: only the objective-focused approach uses it;
* `blue`: both approaches use it.

The seed also draws double-headed arrows for a looser relation, *pseudo-equivalence*. The two directions
of such an arrow are not equally strong (one may follow from the definitions, the other may need a
mesa-optimizer, enough agency, or the prosaic-training argument), so a `PseudoEquivalence` stores each
direction as its own `Implication`, with the conditions it needs and the seed's reason in a short field.

Everything here is frozen and hashable; the graph library (`mesascope.graphs.library`) builds the three
graphs of the seed from these types, and `mesascope.graphs.evaluate` checks them against measurements.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from mesascope.graphs.truth import GraphError

__all__ = [
    "PROPERTIES",
    "AndEdge",
    "AndOrGraph",
    "Approach",
    "Colour",
    "Condition",
    "Implication",
    "Node",
    "PropertyInfo",
    "PseudoEquivalence",
]


class Approach(Enum):
    """The two research approaches the seed contrasts (seed 000)."""

    OBJECTIVE = "objective-focused"
    GENERALIZATION = "generalization-focused"


class Colour(Enum):
    """Edge colour as in the seed's diagrams: which approach(es) an edge belongs to (SPEC.md section 6)."""

    RED = "red"
    YELLOW = "yellow"
    BLUE = "blue"

    @property
    def approaches(self) -> tuple[Approach, ...]:
        """The approaches that use an edge of this colour."""
        if self is Colour.RED:
            return (Approach.GENERALIZATION,)
        if self is Colour.YELLOW:
            return (Approach.OBJECTIVE,)
        return (Approach.OBJECTIVE, Approach.GENERALIZATION)

    @property
    def approach(self) -> Approach | None:
        """The single approach of a red or yellow edge; `None` for blue (shared) edges."""
        approaches = self.approaches
        return approaches[0] if len(approaches) == 1 else None


class Condition(Enum):
    """An assumption an implication (or and-edge) needs beyond what its own terms presuppose.

    An implication with no conditions holds `always`. The seed gives three kinds of assumption:
    a mesa-optimizer must exist, the system must be agentic (capable) enough, or the argument only goes
    through for prosaic training, where the base objective acts on the outcome only through training.
    SPEC.md section 6 adds the conditions under which a direction is claimed *as operationalised here*:
    a training-optimal system (on-distribution alignment also asks the system to do well on training),
    a behavioral objective that is the bridged mesa-objective (inner robustness speaks of the
    mesa-objective, capability robustness of the behavioral objective), and an outer-aligned base
    objective (Demski's objective robustness is read off `J_int`, inner alignment off the base objective).

    Separately from its conditions, anything that involves a mesa-objective property (inner alignment,
    intent alignment, inner robustness) presupposes a mesa-objective, and `evaluate_graph` reports it
    not applicable for a system without one. So `inner_robustness => capability_robustness` does not list
    `needs mesa-optimizer` (its antecedent already talks about one), while `capability_robustness =>
    inner_robustness` does: capability robustness alone can hold without one. The consolidated graph's
    inner alignment -> objective robustness edge lists the mesa-optimizer explicitly, as SPEC.md section 6
    does.

    How `evaluate_graph` reads a condition: where it is known to fail the edge is *not applicable* (never
    a counterexample); where it is unknown the edge is *not tested*; mesa-optimizer, agency and prosaic
    training are assumed to hold unless the caller says otherwise (see `evaluate_graph`).
    """

    NEEDS_MESA_OPTIMIZER = "needs mesa-optimizer"
    NEEDS_SUFFICIENT_AGENCY = "needs sufficient agency"
    NEEDS_PROSAIC_TRAINING = "needs prosaic training"
    NEEDS_TRAINING_OPTIMAL = "needs a training-optimal system"
    NEEDS_BEHAVIORAL_IS_MESA = "needs the behavioral objective to be the bridged mesa-objective"
    NEEDS_OUTER_ALIGNMENT = "needs an outer-aligned base objective"


def _requirement(conditions: frozenset[Condition]) -> str:
    if not conditions:
        return "always"
    order = list(Condition)
    return " + ".join(c.value for c in sorted(conditions, key=order.index))


@dataclass(frozen=True)
class PropertyInfo:
    """A property of SPEC.md section 5 as the graphs see it.

    Attributes:
        id: Stable snake_case id, also the key under which its `PropertyValue` is looked up.
        label: Human-readable name.
        definition: What is computed, in one or two sentences.
        needs_mesa_objective: True for properties that are undefined for a system without a
            mesa-objective (seed 000).
        schools: Schools whose competing definitions the measures may supply (empty if only one).
    """

    id: str
    label: str
    definition: str
    needs_mesa_objective: bool = False
    schools: tuple[str, ...] = ()


def _catalogue(*infos: PropertyInfo) -> Mapping[str, PropertyInfo]:
    return MappingProxyType({info.id: info for info in infos})


PROPERTIES: Mapping[str, PropertyInfo] = _catalogue(
    PropertyInfo(
        "behavioral_alignment",
        "behavioral alignment",
        "Alignment of what the system actually does (the seed's other name for impact alignment): "
        "J_int(pi; D_deploy) >= tau.",
    ),
    PropertyInfo(
        "outer_alignment",
        "outer alignment",
        "The base objective agrees with human intent: every policy optimal for the base objective on "
        "deployment levels scores J_int >= tau.",
    ),
    PropertyInfo(
        "on_distribution_alignment",
        "on-distribution alignment",
        "Alignment on the training distribution only, of both the base objective (its optimal policies) "
        "and the trained system's behaviour.",
    ),
    PropertyInfo(
        "robustness",
        "robustness",
        "High performance on the base objective across deployment: J_base(pi; D_deploy) >= tau.",
    ),
    PropertyInfo(
        "capability_robustness",
        "capability robustness",
        "High performance on the system's own behavioral objective across deployment, whatever that "
        "objective is: J_beh(pi; D_deploy) >= tau.",
    ),
    PropertyInfo(
        "objective_robustness",
        "objective robustness",
        "Hubinger: the behavioral objective stays close to the base objective off-distribution "
        "(EPIC <= eps). Demski (revised): the behavioral objective generalises acceptably "
        "(J_int >= tau_acc).",
        schools=("hubinger", "demski"),
    ),
    PropertyInfo(
        "inner_alignment",
        "inner alignment",
        "A mesa-objective exists and agrees with the base objective (compared through a bridge, "
        "EPIC <= eps).",
        needs_mesa_objective=True,
    ),
    PropertyInfo(
        "intent_alignment",
        "intent alignment",
        "Demski: a mesa-objective exists and agrees with the intended objective (EPIC <= eps). "
        "Hubinger: the optimal policy for the behavioral objective scores J_int >= tau.",
        needs_mesa_objective=True,
        schools=("demski", "hubinger"),
    ),
    PropertyInfo(
        "inner_robustness",
        "inner robustness",
        "The mesa-objective is pursued well across deployment, whatever it is: J_g(pi; D_deploy) >= tau.",
        needs_mesa_objective=True,
    ),
)


@dataclass(frozen=True)
class Node:
    """One node of an and-or graph.

    Attributes:
        id: Stable snake_case id (a `PROPERTIES` key, or a cluster id in the collapsed graph).
        label: Human-readable name, used when rendering.
        definition: One-line meaning of the node in this graph.
        needs_mesa_objective: True if the node is undefined without a mesa-objective.
        readings: For the clusters of the collapsed graph only: which property each approach reads
            the cluster as, e.g. the inner cluster is inner alignment for the objective-focused
            approach and objective robustness for the generalization-focused one (seed 000's table).
    """

    id: str
    label: str
    definition: str = ""
    needs_mesa_objective: bool = False
    readings: tuple[tuple[Approach, str], ...] = ()

    def reading(self, approach: Approach) -> str | None:
        """The property this node stands for under `approach`, or `None` if it has no readings."""
        for candidate, prop in self.readings:
            if candidate is approach:
                return prop
        return None

    @classmethod
    def of(cls, prop: str) -> Node:
        """A node for a property of SPEC.md section 5, labelled from `PROPERTIES`."""
        info = PROPERTIES[prop]
        return cls(info.id, info.label, info.definition, info.needs_mesa_objective)


@dataclass(frozen=True)
class AndEdge:
    """A set of antecedents that together suffice for a consequent (one arc of the seed's diagrams).

    Attributes:
        antecedents: The jointly sufficient nodes, in display order.
        consequent: The node they establish.
        colour: red (generalization-focused only), yellow (objective-focused only), blue (both).
        reason: Why the antecedents should suffice, in one sentence.
        conditions: Assumptions beyond the antecedents (e.g. the consolidated graph's inner alignment
            -> objective robustness needs a mesa-optimizer); empty if none.
    """

    antecedents: tuple[str, ...]
    consequent: str
    colour: Colour
    reason: str = ""
    conditions: frozenset[Condition] = frozenset()

    @property
    def id(self) -> str:
        """A stable id, e.g. `"capability_robustness+objective_robustness->robustness"`."""
        return "+".join(self.antecedents) + "->" + self.consequent

    @property
    def requirement(self) -> str:
        """`"always"` or the conditions joined with `+`."""
        return _requirement(self.conditions)


@dataclass(frozen=True)
class Implication:
    """One direction of a pseudo-equivalence: `antecedent` => `consequent`, under `conditions`.

    Attributes:
        antecedent: The node the direction starts from.
        consequent: The node it claims.
        conditions: Assumptions it needs beyond what its antecedent presupposes; empty means `always`.
        reason: The seed's argument for (or against) this direction, in one or two sentences.
    """

    antecedent: str
    consequent: str
    conditions: frozenset[Condition] = frozenset()
    reason: str = ""

    @property
    def id(self) -> str:
        """A stable id, e.g. `"outer_alignment=>on_distribution_alignment"`."""
        return f"{self.antecedent}=>{self.consequent}"

    @property
    def requirement(self) -> str:
        """`"always"` or the conditions joined with `+`, e.g. `"needs mesa-optimizer + needs sufficient agency"`."""
        return _requirement(self.conditions)

    @property
    def is_unconditional(self) -> bool:
        """True if the direction holds `always`."""
        return not self.conditions


@dataclass(frozen=True)
class PseudoEquivalence:
    """A double-headed arrow of the revised graph; its two directions are kept apart (seed 000).

    Attributes:
        forward: The direction `a => b`.
        backward: The direction `b => a`.
        colour: Always blue in the seed's revised graph (both approaches rely on the pair).
    """

    forward: Implication
    backward: Implication
    colour: Colour = Colour.BLUE

    def __post_init__(self) -> None:
        f, b = self.forward, self.backward
        if (f.antecedent, f.consequent) != (b.consequent, b.antecedent):
            raise GraphError(f"pseudo-equivalence directions {f.id} and {b.id} are not opposite")

    @property
    def pair(self) -> tuple[str, str]:
        """The two nodes, forward antecedent first."""
        return (self.forward.antecedent, self.forward.consequent)

    @property
    def directions(self) -> tuple[Implication, Implication]:
        """`(forward, backward)`."""
        return (self.forward, self.backward)


@dataclass(frozen=True)
class AndOrGraph:
    """An and-or graph of alignment properties (SPEC.md section 6).

    Attributes:
        name: Short id, e.g. `"revised"`.
        title: One-line title for reports.
        nodes: Every node, in display order.
        edges: And-edges; several edges into one consequent are alternatives (an OR).
        equivalences: Pseudo-equivalences (double arrows), each with two separate directions.
        schools: `(property, school)` pairs: which school's definition this graph reads for properties
            the seeds define more than one way (e.g. the revised graph reads Demski's objective robustness).
        root: The goal every path must reach; `"behavioral_alignment"` in all of the seed's graphs.

    Raises:
        GraphError: if an edge names an unknown node, the and-edges form a cycle, or readings sit on a
            node that is not a leaf.
    """

    name: str
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[AndEdge, ...]
    equivalences: tuple[PseudoEquivalence, ...] = ()
    schools: tuple[tuple[str, str], ...] = ()
    root: str = "behavioral_alignment"
    _order: tuple[str, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        ids = [n.id for n in self.nodes]
        if len(set(ids)) != len(ids):
            raise GraphError(f"graph {self.name!r}: duplicate node ids in {ids}")
        known = set(ids)
        if self.root not in known:
            raise GraphError(f"graph {self.name!r}: root {self.root!r} is not a node")
        seen_edges: set[str] = set()
        for edge in self.edges:
            names = (*edge.antecedents, edge.consequent)
            missing = [n for n in names if n not in known]
            if missing:
                raise GraphError(f"graph {self.name!r}: edge {edge.id} names unknown node(s) {missing}")
            if not edge.antecedents or len(set(edge.antecedents)) != len(edge.antecedents):
                raise GraphError(f"graph {self.name!r}: edge {edge.id} needs distinct antecedents")
            if edge.id in seen_edges:
                raise GraphError(f"graph {self.name!r}: edge {edge.id} appears twice")
            seen_edges.add(edge.id)
        for eq in self.equivalences:
            missing = [n for n in eq.pair if n not in known]
            if missing:
                raise GraphError(f"graph {self.name!r}: pseudo-equivalence names unknown node(s) {missing}")
        for node in self.nodes:
            if node.readings and any(e.consequent == node.id for e in self.edges):
                raise GraphError(f"graph {self.name!r}: node {node.id!r} has readings but is not a leaf")
            bad = [p for _, p in node.readings if p not in PROPERTIES]
            if bad:
                raise GraphError(f"graph {self.name!r}: node {node.id!r} reads unknown properties {bad}")
        for prop, _ in self.schools:
            if prop not in PROPERTIES:
                raise GraphError(f"graph {self.name!r}: school given for unknown property {prop!r}")
        object.__setattr__(self, "_order", self._topological_order())

    def _topological_order(self) -> tuple[str, ...]:
        # Kahn's algorithm over and-edges, ties broken by display order so the result is stable.
        position = {n.id: i for i, n in enumerate(self.nodes)}
        pending = {n.id: {a for e in self.edges if e.consequent == n.id for a in e.antecedents} for n in self.nodes}
        order: list[str] = []
        while pending:
            ready = sorted((n for n, deps in pending.items() if not deps), key=position.__getitem__)
            if not ready:
                raise GraphError(f"graph {self.name!r}: the and-edges form a cycle through {sorted(pending)}")
            for n in ready:
                del pending[n]
                order.append(n)
            for deps in pending.values():
                deps.difference_update(ready)
        return tuple(order)

    def node(self, node_id: str) -> Node:
        """The node with id `node_id`.

        Raises:
            KeyError: if there is none.
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"graph {self.name!r} has no node {node_id!r}")

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Node ids in display order."""
        return tuple(n.id for n in self.nodes)

    def edges_into(self, node_id: str) -> tuple[AndEdge, ...]:
        """The alternative and-edges that establish `node_id` (empty for a leaf)."""
        return tuple(e for e in self.edges if e.consequent == node_id)

    def is_leaf(self, node_id: str) -> bool:
        """True if no and-edge establishes `node_id`."""
        return not self.edges_into(node_id)

    @property
    def leaves(self) -> tuple[str, ...]:
        """Nodes no and-edge establishes, in display order."""
        return tuple(n.id for n in self.nodes if self.is_leaf(n.id))

    @property
    def topological_order(self) -> tuple[str, ...]:
        """Every node, antecedents before consequents (leaves first)."""
        return self._order

    @property
    def implications(self) -> tuple[Implication, ...]:
        """Every direction of every pseudo-equivalence, forward before backward."""
        return tuple(d for eq in self.equivalences for d in eq.directions)

    def school_of(self, prop: str) -> str | None:
        """The school whose definition of `prop` this graph reads, or `None`."""
        for candidate, school in self.schools:
            if candidate == prop:
                return school
        return None

    def iter_paths(self) -> Iterator[tuple[AndEdge, ...]]:
        """Every path (proof tree) from the leaves up to the root.

        A path picks one and-edge for each non-leaf node it needs, starting at the root, until only
        leaves remain; its edges are returned root first. The number of paths is the number of ways to
        make those choices (two in each of the seed's graphs).
        """

        def expand(pending: tuple[str, ...], chosen: tuple[AndEdge, ...]) -> Iterator[tuple[AndEdge, ...]]:
            if not pending:
                yield chosen
                return
            head, rest = pending[0], pending[1:]
            alternatives = self.edges_into(head)
            if not alternatives or any(e.consequent == head for e in chosen):
                yield from expand(rest, chosen)
                return
            for edge in alternatives:
                yield from expand(rest + edge.antecedents, (*chosen, edge))

        yield from expand((self.root,), ())
