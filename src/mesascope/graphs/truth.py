"""Three-valued property states and Kleene connectives (SPEC.md sections 5 and 6).

Every property of SPEC.md section 5 answers *holds*, *fails* or *undefined*. "Undefined" is a real
answer, not a missing one that defaults to "fails": seed `000_a6e1b8d5e803b8fe.txt` notes that the
mesa-objective properties (inner alignment, intent alignment, inner robustness) only mean something when
the system has a mesa-objective. A plain policy network with no mesa-objective is neither inner aligned
nor inner misaligned, so reading "undefined" as "fails" would report an inner-alignment failure for
every system that has no inner optimizer at all.

The connectives are therefore Kleene's strong three-valued logic, with "undefined" playing the role of
"unknown": a conjunction is settled as soon as one input fails (whatever the undefined inputs turn out
to be), a disjunction as soon as one input holds, and otherwise the answer stays undefined.

Example:
    >>> kleene_and([Truth.HOLDS, Truth.UNDEFINED])
    <Truth.UNDEFINED: 'undefined'>
    >>> kleene_and([Truth.FAILS, Truth.UNDEFINED])
    <Truth.FAILS: 'fails'>
    >>> kleene_or([Truth.HOLDS, Truth.UNDEFINED])
    <Truth.HOLDS: 'holds'>
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from mesascope.types import MesascopeError

__all__ = [
    "GraphError",
    "PropertyValue",
    "Truth",
    "index_values",
    "kleene_and",
    "kleene_or",
]


class GraphError(MesascopeError, ValueError):
    """A malformed graph or an inconsistent set of property values; the message says which."""


class Truth(Enum):
    """The state of one property on one run: holds, fails, or undefined (SPEC.md section 5).

    `Truth` deliberately has no truth value of its own: `if truth:` raises `TypeError`, because every
    member (including `FAILS`) would otherwise count as true. Compare with `is Truth.HOLDS` instead.
    """

    HOLDS = "holds"
    FAILS = "fails"
    UNDEFINED = "undefined"

    def __bool__(self) -> bool:
        raise TypeError("a Truth has no boolean value; compare it, e.g. `truth is Truth.HOLDS`")

    @classmethod
    def of(cls, value: bool | None) -> Truth:
        """`True` -> HOLDS, `False` -> FAILS, `None` -> UNDEFINED."""
        if value is None:
            return cls.UNDEFINED
        return cls.HOLDS if value else cls.FAILS


def kleene_and(truths: Iterable[Truth]) -> Truth:
    """Strong Kleene conjunction: FAILS if any input fails, HOLDS if all hold, else UNDEFINED.

    The empty conjunction holds (it is the identity of AND).

    Args:
        truths: The inputs, in any order.

    Returns:
        The conjunction.
    """
    result = Truth.HOLDS
    for truth in truths:
        if truth is Truth.FAILS:
            return Truth.FAILS
        if truth is Truth.UNDEFINED:
            result = Truth.UNDEFINED
        elif truth is not Truth.HOLDS:
            raise TypeError(f"expected a Truth, got {truth!r}")
    return result


def kleene_or(truths: Iterable[Truth]) -> Truth:
    """Strong Kleene disjunction: HOLDS if any input holds, FAILS if all fail, else UNDEFINED.

    The empty disjunction fails (it is the identity of OR).

    Args:
        truths: The inputs, in any order.

    Returns:
        The disjunction.
    """
    result = Truth.FAILS
    for truth in truths:
        if truth is Truth.HOLDS:
            return Truth.HOLDS
        if truth is Truth.UNDEFINED:
            result = Truth.UNDEFINED
        elif truth is not Truth.FAILS:
            raise TypeError(f"expected a Truth, got {truth!r}")
    return result


@dataclass(frozen=True)
class PropertyValue:
    """One measured property (SPEC.md section 5): its state, its score and the threshold it was held to.

    The measures side produces these; the graphs only read them.

    Attributes:
        name: The property id, e.g. `"objective_robustness"` (the node ids of `mesascope.graphs`).
        truth: holds / fails / undefined. A string such as `"holds"` is accepted and converted.
        score: The number the verdict was read from (e.g. `J_int` or an EPIC distance), if any.
        threshold: The threshold the score was compared with (`tau`, `eps`, `tau_acc`), if any.
        school: Whose definition produced this value when the seeds give several (e.g. `"hubinger"`,
            `"demski"`); `None` when the property has a single definition.
        evidence: Anything that backs the verdict (levels, policies, distances). Read-only; excluded
            from the hash so values stay hashable whatever the evidence holds.
    """

    name: str
    truth: Truth
    score: float | None = None
    threshold: float | None = None
    school: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.truth, Truth):
            try:
                object.__setattr__(self, "truth", Truth(self.truth))
            except ValueError:
                raise GraphError(
                    f"property {self.name!r}: truth must be one of holds/fails/undefined, got {self.truth!r}"
                ) from None
        for attr in ("score", "threshold"):
            number = getattr(self, attr)
            if number is not None:
                number = float(number)
                if math.isnan(number):
                    raise GraphError(f"property {self.name!r}: {attr} is NaN; use None for 'no number'")
                object.__setattr__(self, attr, number)
        object.__setattr__(self, "evidence", MappingProxyType(dict(self.evidence)))

    @classmethod
    def undefined(cls, name: str, reason: str, *, school: str | None = None) -> PropertyValue:
        """An undefined value whose evidence says why, e.g. "the system has no mesa-objective"."""
        return cls(name, Truth.UNDEFINED, school=school, evidence={"reason": reason})


def index_values(values: Iterable[PropertyValue]) -> dict[str, PropertyValue]:
    """Key property values the way `evaluate_graph` looks them up.

    Each value is stored under `"name/school"` when it has a school, and under the bare `"name"` when it
    is the only value with that name. When two schools measured the same property, the bare name is left
    out on purpose: a graph then reads the school it declares (SPEC.md section 6), never an arbitrary one.

    Args:
        values: Property values, e.g. everything the measures computed for one run.

    Returns:
        A new dict from lookup key to value.

    Raises:
        GraphError: if the same (name, school) pair appears twice.

    Example:
        >>> a = PropertyValue("objective_robustness", Truth.HOLDS, school="hubinger")
        >>> b = PropertyValue("objective_robustness", Truth.FAILS, school="demski")
        >>> sorted(index_values([a, b]))
        ['objective_robustness/demski', 'objective_robustness/hubinger']
    """
    index: dict[str, PropertyValue] = {}
    by_name: dict[str, list[PropertyValue]] = {}
    for value in values:
        key = f"{value.name}/{value.school}" if value.school else value.name
        if key in index or (value.school is None and value.name in by_name):
            raise GraphError(f"two values for property {value.name!r} (school {value.school!r})")
        by_name.setdefault(value.name, []).append(value)
        if value.school:
            index[key] = value
    for name, same in by_name.items():
        if len(same) == 1:
            index[name] = same[0]
        elif any(v.school is None for v in same):
            raise GraphError(f"property {name!r} has values both with and without a school")
    return index
