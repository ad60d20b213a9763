"""Terminal views of the verdicts: the per-run verdict table and `mesascope explain` (SPEC.md section 7)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from mesascope.properties.core import DEFINITIONS, Definition
from mesascope.types import MesascopeError

__all__ = ["UnknownPropertyError", "explain", "explain_lines", "verdict_table"]

_RELATED = {"outer_alignment": ("on_distribution_alignment",)}
_ORDER = ("hubinger", "wentworth", "wentworth_before_training", "shah", "ngo", "demski", "pseudo_alignment")
_ROW = {"wentworth": "wentworth (after training)", "wentworth_before_training": "wentworth (before training)"}


class UnknownPropertyError(MesascopeError, KeyError):
    """`mesascope explain` was given a property it does not know; the message lists the valid names."""

    def __str__(self) -> str:
        return str(self.args[0])


def verdict_table(result: dict[str, Any]) -> Table | None:
    """One row per school, one column per system: the label each school gives (`None` if no verdicts).

    Schools are rows so the table stays readable on an 80-column terminal whatever the number of seeds;
    where the schools disagree about the same system is read down a column.
    """
    systems = [s for s in result.get("systems", []) if "verdicts" in s]
    if not systems:
        return None
    schools = [k for k in _ORDER if any(k in s["verdicts"] for s in systems)]
    t = result.get("thresholds", {})
    table = Table(title="verdicts by school (SPEC.md section 7)", show_lines=True)
    table.add_column("school", style="bold", overflow="fold")
    for s in systems:
        table.add_column(f"seed {s['seed']}", overflow="fold")

    def state(s: dict[str, Any]) -> str:
        prop = s["properties"]["behavioral_alignment"]
        beh = prop["state"]
        text = f"[green]{beh}[/]" if beh == "holds" else f"[red]{beh}[/]" if beh == "fails" else beh
        return text + (" [yellow](marginal)[/]" if prop.get("marginal") else "")

    def label(s: dict[str, Any], school: str) -> str:
        v = s["verdicts"].get(school)
        if not v:
            return "-"
        return v["label"] + (" [yellow](marginal)[/]" if v.get("marginal") else "")

    table.add_row("behavioral alignment", *(state(s) for s in systems))
    for school in schools:
        table.add_row(_ROW.get(school, school.replace("_", "-")), *(label(s, school) for s in systems))

    def corollary(s: dict[str, Any]) -> str:
        inv = s.get("invariants", {}).get("wentworth_corollary", {})
        if not inv.get("holds"):
            return "[bold red]VIOLATED (bug)[/]"
        content = inv.get("before_training", {}).get("content")
        return f"holds; before training: {content}" if content else "[green]holds[/]"

    table.add_row("Wentworth corollary", *(corollary(s) for s in systems))

    def established(s: dict[str, Any]) -> str:
        inv = s.get("invariants", {}).get("labels_established")
        if inv is None:
            return "-"
        return "[green]yes[/]" if inv["holds"] else "[bold red]NO (bug): " + "; ".join(inv["contradictions"]) + "[/]"

    table.add_row("labels established", *(established(s) for s in systems))
    names = " ".join(f"{k}={v:g}" for k, v in t.items()) if t else "defaults"
    table.caption = (
        f"thresholds: {names}. (marginal): a property the label rests on has its 95% interval over levels "
        "around its threshold. Reasons and evidence: audit.json `verdicts`; definitions: `mesascope explain PROPERTY`."
    )
    return table


def explain(name: str) -> list[Definition]:
    """Every school's definition of a property: a graph node id (`outer_alignment`) or a versioned name.

    Raises:
        UnknownPropertyError: with the list of valid names.
    """
    if name in DEFINITIONS:
        return [DEFINITIONS[name]]
    found = [d for d in DEFINITIONS.values() if d.node == name]
    # Demski's counterpart of outer alignment is on-distribution alignment (seed 000's revised graph).
    found += [DEFINITIONS[r] for r in _RELATED.get(name, ())]
    if found:
        return found
    nodes = sorted({d.node for d in DEFINITIONS.values()})
    versions = sorted(n for n in DEFINITIONS if n not in nodes)
    raise UnknownPropertyError(
        f"unknown property {name!r}; valid names: {', '.join(nodes)} (or one school's version: {', '.join(versions)})"
    )


def explain_lines(name: str) -> list[str]:
    """`explain(name)` as plain lines (rich markup): one block per school, ending with the seed."""
    lines = []
    for d in explain(name):
        extra = " Undefined without a mesa-objective." if d.mesa_only else ""
        lines.append(f"[bold]{d.name}[/] ([cyan]{d.school}[/]): {d.text}{extra} [dim]source: seeds/{d.seed}[/]")
    return lines
