"""Core value types shared across mesascope (SPEC.md section 1)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MesascopeError", "Objective", "error_line", "read_json_object", "try_read_json_object"]


class MesascopeError(Exception):
    """An error a user can act on: the message says what was wrong and how to fix it.

    The CLI prints these as one line (never a traceback) and exits with status 2.
    """


def error_line(err: BaseException, *, with_type: bool = True) -> str:
    """One line for an error that is recorded rather than raised (a failed run, sweep point or drawing):
    `"TypeName: first line of the message"` (or the first line alone, `with_type=False`)."""
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else ""
    if not with_type:
        return first or type(err).__name__
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def read_json_object(path: Path, *, holds: str = "a JSON object", hint: str = "",
                     error: type[MesascopeError] = MesascopeError) -> dict[str, Any]:
    """The JSON object stored in `path`.

    Raises:
        MesascopeError (or `error`): naming the file when it is missing, unreadable, not JSON, or not a
            JSON object (`holds` says what it should hold; `hint` is appended to the message).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{path} is not readable JSON ({err}){hint}") from None
    if not isinstance(data, dict):
        raise error(f"{path} does not hold {holds} (expected a JSON object)")
    return data


def try_read_json_object(path: Path) -> dict[str, Any] | None:
    """`read_json_object`, or None where it would raise (an index that skips what it cannot read)."""
    try:
        return read_json_object(path)
    except MesascopeError:
        return None


@dataclass(frozen=True)
class Objective:
    """A reward over transitions, `R(s, a, s') = w . phi(s, a, s')` (SPEC.md section 1).

    Attributes:
        name: Short label, e.g. "cheese".
        weights: `(feature_name, weight)` pairs; features not named have weight 0.
        reach: A *reach* goal ("get to the corner"): valued at first arrival, so its episode ends at the
            first transition that pays it a positive reward (`mesascope.solve.dp.stop_on_arrival`).
            Without it, a reward paid on every step spent on a square that does not end the level's
            episode values camping there forever, which no system trained where that square ended the
            episode was ever asked to do.
    """

    name: str
    weights: tuple[tuple[str, float], ...]
    reach: bool = False

    @classmethod
    def of(cls, name: str, weights: Mapping[str, float], *, reach: bool = False) -> Objective:
        """Build from a mapping, e.g. `Objective.of("cheese", {"cheese": 1.0})`."""
        return cls(name, tuple(sorted((str(k), float(v)) for k, v in weights.items())), bool(reach))

    def vector(self, feature_names: Sequence[str]) -> np.ndarray:
        """Weights as float32 `[K]` aligned with `feature_names`.

        Raises:
            MesascopeError: if the objective names a feature the level does not have.
        """
        index = {f: i for i, f in enumerate(feature_names)}
        unknown = [f for f, _ in self.weights if f not in index]
        if unknown:
            raise MesascopeError(
                f"objective {self.name!r} uses unknown feature(s) {unknown}; "
                f"this level's features are: {', '.join(feature_names)}"
            )
        w = np.zeros(len(feature_names), np.float32)
        for f, v in self.weights:
            w[index[f]] = v
        return w
