"""Typed, range-checked parameters: scenario parameters (`--param`) and training settings (`--set`).

Every scenario declares its parameters, and every base optimizer its settings, as `Param`s: a name, a type,
a default and a range. `parse_values` turns what a user typed (`region=3`, `maze_sizes=[5,7]`) into checked
Python values **before anything is written**, so a bad value is one `error:` line that names the
parameter, its type and its range, never a traceback and never a half-created run folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesascope.types import MesascopeError

__all__ = ["KINDS", "Param", "ParamError", "parse_values"]

KINDS = ("int", "float", "bool", "str", "ints", "floats")
"""Parameter types: integers, reals, booleans, one of a list of strings, a tuple of integers or of reals."""


class ParamError(MesascopeError, ValueError):
    """A parameter or setting is unknown, of the wrong type or out of range; the message says which."""


@dataclass(frozen=True)
class Param:
    """One declared parameter or setting.

    Attributes:
        name: As typed after `--param` or `--set`.
        kind: One of `KINDS`.
        default: The value when it is not given.
        help: One line: what it changes.
        low, high: Inclusive range of a number (of each element for `ints`); None = unbounded.
        choices: The allowed values of a `str` (or of any kind, when given).
        length: For `ints`: the allowed numbers of elements `(least, most)`.
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    length: tuple[int, int] = (1, 16)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name!r}: unknown kind {self.kind!r}; kinds: {', '.join(KINDS)}")

    def describe(self) -> str:
        """The type and range in words, e.g. `"an integer in [1, 5]"`."""
        if self.choices is not None:
            return "one of " + ", ".join(json.dumps(c) if isinstance(c, str) else str(c) for c in self.choices)
        what = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                "ints": "a list of integers like [5,7]", "floats": "a list of numbers like [0.5,1]"}[self.kind]
        bounds = ""
        if self.low is not None and self.high is not None:
            bounds = f" in [{self.low:g}, {self.high:g}]"
        elif self.low is not None:
            bounds = f" >= {self.low:g}"
        elif self.high is not None:
            bounds = f" <= {self.high:g}"
        if self.kind in ("ints", "floats") and bounds:
            bounds = ", each" + bounds
        return what + bounds

    def _fail(self, value: Any, owner: str) -> ParamError:
        return ParamError(f"{owner}: {self.name} must be {self.describe()}; got {value!r}")

    def _number(self, value: Any, owner: str, integer: bool) -> float | int:
        if isinstance(value, bool):
            raise self._fail(value, owner)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (json.JSONDecodeError, ValueError):
                raise self._fail(value, owner) from None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._fail(value, owner)
        if not math.isfinite(float(value)):
            raise self._fail(value, owner)
        if integer:
            if float(value) != int(value):
                raise self._fail(value, owner)
            value = int(value)
        else:
            value = float(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise self._fail(value, owner)
        return value

    def parse(self, value: Any, owner: str = "scenario") -> Any:
        """`value` (a Python value, or the text a user typed) as this parameter's type, checked.

        Raises:
            ParamError: naming the parameter, its type and range, and the value given.
        """
        if self.kind in ("int", "float"):
            out: Any = self._number(value, owner, self.kind == "int")
        elif self.kind == "bool":
            if isinstance(value, str):
                text = value.strip().lower()
                if text not in ("true", "false", "1", "0"):
                    raise self._fail(value, owner)
                out = text in ("true", "1")
            elif isinstance(value, bool) or value in (0, 1):
                out = bool(value)
            else:
                raise self._fail(value, owner)
        elif self.kind == "str":
            if not isinstance(value, str):
                raise self._fail(value, owner)
            out = value
        else:  # ints, floats
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except (json.JSONDecodeError, ValueError):
                    raise self._fail(value, owner) from None
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, list | tuple) or not self.length[0] <= len(value) <= self.length[1]:
                raise self._fail(value, owner)
            out = tuple(self._number(v, owner, self.kind == "ints") for v in value)
        if self.choices is not None and out not in self.choices:
            raise self._fail(value, owner)
        return out


def parse_values(
    declared: Sequence[Param], given: Mapping[str, Any], *, owner: str, what: str = "parameter", fill: bool = True
) -> dict[str, Any]:
    """Check and convert every given value against its declaration.

    Args:
        declared: The parameters that exist.
        given: name -> value (typed text or Python values).
        owner: Who declares them, for the message (`"cheese-corner-v0"`, `"ppo"`).
        what: `"parameter"` or `"setting"`, for the message.
        fill: Also return the defaults of the parameters not given.

    Returns:
        name -> checked value, in declaration order.

    Raises:
        ParamError: on an unknown name (listing the valid ones) or a bad value.
    """
    by_name = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        valid = ", ".join(f"{p.name} ({p.describe()})" for p in declared) or "none"
        raise ParamError(f"{owner} has no {what}(s) {unknown}; its {what}s are: {valid}")
    out = {}
    for p in declared:
        if p.name in given:
            out[p.name] = p.parse(given[p.name], owner)
        elif fill:
            out[p.name] = p.default
    return out


def describe_all(declared: Iterable[Param]) -> list[str]:
    """One line per parameter: `name (type and range, default ...): help`."""
    return [f"{p.name} ({p.describe()}; default {json.dumps(list(p.default) if isinstance(p.default, tuple) else p.default)}): {p.help}"
            for p in declared]
