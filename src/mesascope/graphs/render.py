"""Render an and-or graph, optionally with a run's evaluation, as Graphviz DOT or SVG (SPEC.md section 6).

Drawing conventions follow seed `000_a6e1b8d5e803b8fe.txt`:

* edge colours: red = generalization-focused only, yellow (drawn goldenrod, readable on white) =
  objective-focused only, blue = both approaches;
* an and-edge with several antecedents meets at a small junction point, so one arrow leaves the whole
  jointly sufficient set; several and-edges into one node are alternatives;
* pseudo-equivalences are dashed blue arrows, one per direction, each labelled `always` or with the
  conditions it needs;
* with an evaluation, each node shows its state (holds / fails / undefined) and score, coloured by state;
  counterexample edges are drawn thick and labelled.

`dot` is optional at run time: `render_svg` falls back to writing the `.dot` text and says how to install
Graphviz.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mesascope.graphs.evaluate import CheckStatus, GraphEvaluation, NodeState
from mesascope.graphs.model import PROPERTIES, AndOrGraph, Colour, Node
from mesascope.graphs.truth import Truth

__all__ = [
    "EDGE_COLOURS", "STATE_FILLS", "RenderResult", "drawn_svg", "find_dot", "render_svg", "reusing_drawings", "to_dot",
]

EDGE_COLOURS: dict[Colour, str] = {Colour.RED: "red", Colour.YELLOW: "goldenrod", Colour.BLUE: "blue"}
STATE_FILLS: dict[Truth, str] = {Truth.HOLDS: "#cdeccd", Truth.FAILS: "#f6c6c6", Truth.UNDEFINED: "#e4e4e4"}

INSTALL_HINT = (
    "install Graphviz to get SVG (Debian/Ubuntu: `apt-get install graphviz`; macOS: `brew install graphviz`), "
    "or open the .dot file in any Graphviz viewer"
)


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs: str | float) -> str:
    parts = [f"{k}={_quote(str(v))}" for k, v in attrs.items()]
    return " [" + ", ".join(parts) + "]"


def _label(prop: str) -> str:
    info = PROPERTIES.get(prop)
    return info.label if info is not None else prop.replace("_", " ")


def _score_text(state: NodeState) -> str:
    value = state.value
    if value is None or value.score is None:
        return ""
    text = f"score {value.score:.3g}"
    if value.threshold is not None:
        text += f" (threshold {value.threshold:.3g})"
    return text


def _node_label(node: Node, state: NodeState | None) -> str:
    lines = [node.label]
    if state is None:
        lines += [f"{a.value}: {_label(p)}" for a, p in node.readings]
        return "\n".join(lines)
    if state.readings:
        lines += [f"{a.value}: {_label(p)} {t.value}" for a, p, t in state.readings]
    else:
        school = f" [{state.value.school}]" if state.value is not None and state.value.school else ""
        lines.append(state.measured.value + school)
    score = _score_text(state)
    if score:
        lines.append(score)
    if state.derived is not state.measured:
        lines.append(f"graph implies: {state.derived.value}")
    return "\n".join(lines)


def to_dot(graph: AndOrGraph, evaluation: GraphEvaluation | None = None) -> str:
    """Graphviz DOT text for `graph`, annotated with `evaluation` if given (SPEC.md section 6).

    Args:
        graph: A graph from `mesascope.graphs.library`, or any `AndOrGraph`.
        evaluation: The result of `evaluate_graph(graph, ...)`, or `None` for the bare graph.

    Returns:
        DOT source (a `digraph`), leaves at the bottom and behavioral alignment at the top.

    Raises:
        ValueError: if `evaluation` is for a different graph.
    """
    if evaluation is not None and evaluation.graph != graph:
        raise ValueError(f"evaluation is for graph {evaluation.graph.name!r}, not {graph.name!r}")
    title = graph.title
    if evaluation is not None:
        title += "\n" + "\n".join(
            f"{p.name} path: {p.status.value}"
            + (f" (breaks at {graph.node(p.breaks_at).label})" if p.breaks_at else "")
            for p in evaluation.paths
        )
    legend = "red: generalization-focused only; yellow: objective-focused only; blue: both"
    if graph.equivalences:
        legend += "; dashed: pseudo-equivalence"
    if evaluation is not None and any(c.status is CheckStatus.NOT_APPLICABLE for c in evaluation.edges):
        legend += "; dotted: not applicable"
    title += "\n" + legend
    lines = [
        f"digraph {_quote(graph.name)} {{",
        f"  graph{_attrs(rankdir='BT', nodesep=0.7, label=title, labelloc='t', fontname='Helvetica', fontsize=12)};",
        f"  node{_attrs(shape='box', style='rounded,filled', fillcolor='white', fontname='Helvetica', fontsize=11)};",
        f"  edge{_attrs(fontname='Helvetica', fontsize=9, penwidth=1.6)};",
    ]
    for node in graph.nodes:
        state = evaluation.node(node.id) if evaluation is not None else None
        attrs: dict[str, str | float] = {"label": _node_label(node, state), "tooltip": node.definition or node.label}
        if state is not None:
            attrs["fillcolor"] = STATE_FILLS[state.measured]
        lines.append(f"  {_quote(node.id)}{_attrs(**attrs)};")

    for index, edge in enumerate(graph.edges):
        colour = EDGE_COLOURS[edge.colour]
        check = evaluation.edges[index] if evaluation is not None else None
        style: dict[str, str | float] = {"color": colour, "tooltip": edge.reason or edge.id}
        label = "" if not edge.conditions else edge.requirement
        if check is not None and check.status is CheckStatus.COUNTEREXAMPLE:
            style["penwidth"] = 3.5
            label = (label + "\n" if label else "") + "counterexample"
            style["fontcolor"] = "red"
        elif check is not None and check.status is CheckStatus.NOT_APPLICABLE:
            style["style"] = "dotted"
        if len(edge.antecedents) == 1:
            extra = {"label": label} if label else {}
            lines.append(f"  {_quote(edge.antecedents[0])} -> {_quote(edge.consequent)}{_attrs(**style, **extra)};")
            continue
        junction = f"__and_{index}"
        lines.append(f"  {_quote(junction)}{_attrs(shape='point', width=0.09, color=colour, tooltip='AND: ' + edge.id)};")
        for antecedent in edge.antecedents:
            lines.append(f"  {_quote(antecedent)} -> {_quote(junction)}{_attrs(**style, arrowhead='none')};")
        extra = {"label": label} if label else {}
        lines.append(f"  {_quote(junction)} -> {_quote(edge.consequent)}{_attrs(**style, **extra)};")

    for index, eq in enumerate(graph.equivalences):
        for position, imp in ((2 * index, eq.forward), (2 * index + 1, eq.backward)):
            style = {"color": EDGE_COLOURS[eq.colour], "style": "dashed", "tooltip": f"{imp.id}: {imp.reason}"}
            label = imp.requirement.replace(" + ", "\n+ ")
            if evaluation is not None:
                check = evaluation.implications[position]
                label += f"\n{check.status.value}"
                if check.status is CheckStatus.COUNTEREXAMPLE:
                    style.update(penwidth=3.5, fontcolor="red")
            lines.append(f"  {_quote(imp.antecedent)} -> {_quote(imp.consequent)}{_attrs(**style, label=label)};")
    lines += _pair_layout(graph)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _pair_layout(graph: AndOrGraph) -> list[str]:
    """Keep each pseudo-equivalent pair side by side, so its dashed arrows stay short and readable."""
    paired = {n for eq in graph.equivalences for n in eq.pair}
    members = [n for n in graph.node_ids if n in paired]  # display order keeps each pair adjacent
    if not members:
        return []
    if all(graph.is_leaf(n) for n in members):
        chain = " -> ".join(_quote(n) for n in members)
        return [f"  {{rank=same; {chain}{_attrs(style='invis', weight=10)};}}"]
    return [f"  {{rank=same; {_quote(eq.pair[0])}; {_quote(eq.pair[1])};}}" for eq in graph.equivalences]


@dataclass(frozen=True)
class RenderResult:
    """What `render_svg` wrote.

    Attributes:
        path: The file written (`.svg`, or `.dot` when Graphviz was not available).
        format: `"svg"` or `"dot"`.
        message: One line for the user; on fallback it says `dot` was missing and how to install it.
    """

    path: Path
    format: str
    message: str

    @property
    def ok(self) -> bool:
        """True if an SVG was written."""
        return self.format == "svg"


def find_dot() -> str | None:
    """The path of the Graphviz `dot` executable, or `None` if it is not on PATH."""
    return shutil.which("dot")


_DRAWN: list[dict[tuple[str, str], bytes]] = []
"""The innermost `reusing_drawings` block's `(dot, source) -> SVG` drawings (none outside such a block)."""


@contextlib.contextmanager
def reusing_drawings() -> Iterator[None]:
    """Within the block, a DOT source already drawn is not drawn again.

    `mesascope audit` draws each graph for the run folder, then the same DOT source for the report: a `dot`
    process each (~20 ms). Outside such a block every call draws, so nothing outlives a command.
    """
    _DRAWN.append({})
    try:
        yield
    finally:
        _DRAWN.pop()


def drawn_svg(source: str, dot: str) -> bytes:
    """The SVG `dot` draws from `source`, or the one drawn from the same source in this `reusing_drawings` block.

    Failures are not kept: a source that failed is drawn again next time.
    """
    if not _DRAWN:
        return _run_dot(source, dot)
    drawn, key = _DRAWN[-1], (dot, source)
    if key not in drawn:
        drawn[key] = _run_dot(source, dot)
    return drawn[key]


def _run_dot(source: str, dot: str) -> bytes:
    try:
        import graphviz  # the optional Python package
    except ImportError:
        done = subprocess.run([dot, "-Tsvg"], input=source.encode(), capture_output=True, check=True, timeout=60)
        return done.stdout
    return graphviz.Source(source).pipe(format="svg", engine="dot")


def render_svg(graph: AndOrGraph, evaluation: GraphEvaluation | None, path: str | Path) -> RenderResult:
    """Write `graph` (with `evaluation`, if any) as SVG, or as `.dot` text when `dot` is unavailable.

    Uses the `graphviz` Python package when it is installed, else the `dot` binary directly. Neither is
    required: without `dot` this writes the DOT source next to `path` and returns a message saying so,
    instead of raising.

    Args:
        graph: The graph to draw.
        evaluation: Its evaluation on a run, or `None`.
        path: Where to write; the suffix is replaced by `.svg` (or `.dot` on fallback).

    Returns:
        A `RenderResult` with the file written and a one-line message.
    """
    target = Path(path)
    source = to_dot(graph, evaluation)
    dot = find_dot()
    failure = "Graphviz `dot` was not found on PATH"
    if dot is not None:
        try:
            svg = drawn_svg(source, dot)
        except Exception as exc:  # noqa: BLE001 - any failure of the optional renderer means: fall back
            failure = f"Graphviz `dot` failed ({type(exc).__name__}: {str(exc).strip()[:200]})"
        else:
            svg_path = target.with_suffix(".svg")
            svg_path.parent.mkdir(parents=True, exist_ok=True)
            svg_path.write_bytes(svg)
            return RenderResult(svg_path, "svg", f"wrote {svg_path}")
    dot_path = target.with_suffix(".dot")
    dot_path.parent.mkdir(parents=True, exist_ok=True)
    dot_path.write_text(source, encoding="utf-8")
    return RenderResult(dot_path, "dot", f"{failure}; wrote the graph as DOT text to {dot_path} instead. {INSTALL_HINT}.")
