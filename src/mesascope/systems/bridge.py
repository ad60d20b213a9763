"""Bridges: the only legal way to compare a mesa-objective with a base or intended objective.

Seed `002_809e035286793bb1.txt` argues that a mesa-objective `g: X -> R` (over the mesa-optimizer's own
internal search space) and a base objective `f` (over the environment's outcomes) have different domains,
so "is the mesa-objective aligned?" has no answer until something maps one domain onto the other. The
comment thread there sketches that map: internal objects -> outputs, plus a utility over outputs.
mesascope makes it an explicit object (SPEC.md section 1) and refuses to compare without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax

from mesascope.types import MesascopeError

__all__ = ["Bridge", "TypeMismatchError", "require_bridge"]


class TypeMismatchError(MesascopeError, TypeError):
    """A mesa-objective was compared with an objective over another domain, with no bridge."""


@dataclass(frozen=True)
class Bridge:
    """Maps a mesa-objective's domain to the outcomes base and intended objectives score.

    Attributes:
        name: Label shown in reports.
        source_domain: The mesa-objective's domain, e.g. "cells perceived by the planner".
        target_domain: The outcomes' domain, e.g. "transitions (s, a, s') of the level".
        to_reward: `(mesa_objective, level, tabular_level) -> TransitionReward`: the mesa-objective pulled
            back to a reward over the level's transitions `R(s, a, s') = sa[s, a] + next[s']`
            (`mesascope.levels.tabular.TransitionReward`). The `s'` part must stay a function of `s'`:
            folded into a table `r(s, a)`, potential shaping could no longer be told apart (SPEC.md
            section 3).
        note: Why this map is the right one (stated for the reader of an audit).
    """

    name: str
    source_domain: str
    target_domain: str
    to_reward: Callable[[Any, Any, Any], jax.Array]
    note: str = ""


def require_bridge(mesa_domain: str, other_domain: str, bridge: Bridge | None) -> Bridge:
    """Return `bridge` if it connects the two domains; raise `TypeMismatchError` otherwise.

    Raises:
        TypeMismatchError: naming both domains and how to supply a bridge.
    """
    if bridge is None:
        raise TypeMismatchError(
            f"cannot compare a mesa-objective over {mesa_domain!r} with an objective over {other_domain!r}: "
            "they have different domains (seed 002). Pass bridge=Bridge(source_domain="
            f"{mesa_domain!r}, target_domain={other_domain!r}, to_reward=...) mapping the mesa-objective to "
            "a reward over the level's transitions, or use the mesa-optimizer's default bridge "
            "(`MesaOptimizer.default_bridge()`)."
        )
    if bridge.source_domain != mesa_domain or bridge.target_domain != other_domain:
        raise TypeMismatchError(
            f"bridge {bridge.name!r} maps {bridge.source_domain!r} -> {bridge.target_domain!r}, but the "
            f"comparison needs {mesa_domain!r} -> {other_domain!r}; supply a bridge between those domains"
        )
    return bridge
