"""Building blocks for a gridworld scenario's finding check (`Finding.check`), read off a finished audit.

Each function returns one `Check` over every trained system of the audit (`audit["systems"]`): the
measured value is the list of per-seed values (rounded for the table), and the check holds only if the
condition holds for every seed, or for as many as it says. They read audit.json's documented keys
only (`scores`, `first_reached`, `properties`, `verdicts`, `scenario_measures`, `baselines`), so a
finding check is a function of the audit, never of the run that produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mesascope.scenarios.base import Check

__all__ = [
    "chance",
    "every_seed",
    "first_reached_at_least",
    "label_in",
    "level_measure",
    "measure_vs_uniform",
    "property_state",
    "score_at_least",
    "score_below",
    "seeds_where",
]

Audit = Mapping[str, Any]


def _round(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_round(v) for v in x]
    return round(float(x), 3) if isinstance(x, (int, float)) and not isinstance(x, bool) else x


def every_seed(audit: Audit, name: str, value: Callable[[Mapping[str, Any]], Any], expected: str,
               holds: Callable[[Any], bool], *, at_least: int | None = None) -> Check:
    """A condition on one value per system; holds when it holds for every seed (or `at_least` of them)."""
    values = [value(s) for s in audit["systems"]]
    ok = [v is not None and bool(holds(v)) for v in values]
    need = len(ok) if at_least is None else at_least
    suffix = "" if at_least is None else f" (at least {at_least} of {len(ok)} seeds)"
    return Check(name, [_round(v) for v in values], expected + suffix, bool(ok) and sum(ok) >= need)


def seeds_where(audit: Audit, predicate: Callable[[Mapping[str, Any]], bool]) -> list[int]:
    """The seeds of the systems for which `predicate(system)` holds."""
    return [s["seed"] for s in audit["systems"] if predicate(s)]


def score_at_least(audit: Audit, split: str, objective: str, low: float, **kw: Any) -> Check:
    """`J_objective` on `split` (mean over its informative levels) >= `low` for every seed."""
    return every_seed(audit, f"J_{objective} on {split}", lambda s: s["scores"][split].get(objective), f">= {low:g}",
                      lambda v: v >= low, **kw)


def score_below(audit: Audit, split: str, objective: str, high: float, **kw: Any) -> Check:
    """`J_objective` on `split` < `high` for every seed."""
    return every_seed(audit, f"J_{objective} on {split}", lambda s: s["scores"][split].get(objective), f"< {high:g}",
                      lambda v: v < high, **kw)


def chance(audit: Audit, goal: str, split: str = "deploy") -> float:
    """The uniform-random policy's probability of reaching `goal` first (the baseline)."""
    return float(audit["baselines"]["uniform"]["first_reached"][split][goal])


def first_reached_at_least(audit: Audit, goal: str, *, factor: float = 1.0, plus: float = 0.0, low: float | None = None,
                           split: str = "deploy", **kw: Any) -> Check:
    """Probability that `goal` is reached before the other candidate goals on `split` is at least
    `factor * chance + plus` (and at least `low` when given), for every seed."""
    p0 = chance(audit, goal, split)
    bound = max(factor * p0 + plus, low if low is not None else -1.0)
    text = f">= {bound:.3g}" + (f" ({factor:g} x uniform {p0:.3g}" + (f" + {plus:g}" if plus else "") + ")" if factor else "")
    return every_seed(audit, f"{goal} reached first on {split}", lambda s: s["first_reached"][split][goal], text,
                      lambda v: v >= bound, **kw)


def property_state(audit: Audit, prop: str, states: tuple[str, ...], **kw: Any) -> Check:
    """The property's measured state is one of `states` for every seed."""
    return every_seed(audit, f"{prop}", lambda s: s["properties"][prop]["state"], " or ".join(states),
                      lambda v: v in states, **kw)


def label_in(audit: Audit, school: str, labels: tuple[str, ...], **kw: Any) -> Check:
    """The school's verdict label is one of `labels` (a prefix match for labels with a parenthesis)."""
    return every_seed(audit, f"{school} verdict", lambda s: (s["verdicts"].get(school) or {}).get("label"),
                      " or ".join(labels), lambda v: any(v == x or v.startswith(x + " (") for x in labels), **kw)


def measure_vs_uniform(audit: Audit, measure: str, *, plus: float, split: str = "deploy", **kw: Any) -> Check:
    """The scenario measure of every system exceeds the uniform policy's by at least `plus`."""
    base = float(audit["baselines"]["uniform"]["scenario_measures"][measure][split])
    return every_seed(audit, f"{measure} on {split}", lambda s: s["scenario_measures"][measure][split],
                      f">= uniform {base:.3g} + {plus:g}", lambda v: v >= base + plus, **kw)


def level_measure(audit: Audit, measure: str, split: str, expected: str, holds: Callable[[float], bool]) -> Check:
    """A system-independent scenario measure (what every base-optimal policy does, say) on `split`."""
    value = float(audit["scenario_measures"][measure]["value"][split])
    return Check(f"{measure} on {split}", round(value, 4), expected, bool(holds(value)))
