"""`mesascope report RUN_DIR`: one self-contained HTML page for a run folder.

Render only, no computation: the page is built from what the run folder already holds (`audit.json`,
`run.json`, `training.npz`, `pictures/*.png`). Plots are inline SVG (matplotlib), pictures are base64
data URIs, the and-or graphs are inline SVG from Graphviz; the page loads nothing from anywhere else, so
it can be mailed to a colleague as one file.

Sections (their `id`s are stable; the table of contents links to them): `overview`, `summary`, `scores`,
`first-reached`, `behavioral`, `distances`, `mesa`, `properties`, `graphs`, `verdicts`, `training`,
`pictures`, plus `findings` when a scenario recorded its own results.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mesascope.report.graph_figures import graph_figures
from mesascope.report.html import CSS, Safe, badge, esc, fmt, marginal_badge, section, table
from mesascope.report.inside_tables import probes_table, steer_table
from mesascope.report.plots import first_reached_svg, learning_curves_svg, score_distributions_svg
from mesascope.types import MesascopeError, read_json_object

__all__ = ["ReportError", "SECTION_IDS", "build_run_report", "write_run_report"]

NOT_COMPUTED = "not computed for this run"

SECTION_IDS = (
    ("overview", "Scenario"),
    ("summary", "Summary"),
    ("scores", "Scores"),
    ("first-reached", "First reached"),
    ("behavioral", "Behavioral objective"),
    ("distances", "EPIC distances"),
    ("mesa", "Mesa-objective"),
    ("properties", "Properties"),
    ("graphs", "And-or graphs"),
    ("verdicts", "Verdicts"),
    ("training", "Learning curves"),
    ("pictures", "Pictures"),
)
"""Every run report's sections, in page order: `(id, table-of-contents title)`."""

SCHOOL_TITLES = {
    "hubinger": "Hubinger (infinite data)",
    "wentworth": "Wentworth (after training)",
    "wentworth_before_training": "Wentworth (before training)",
    "shah": "Shah",
    "ngo": "Ngo",
    "demski": "Demski",
    "pseudo_alignment": "Pseudo-alignment type",
}


class ReportError(MesascopeError):
    """The folder cannot be reported on (no audit.json, or an unreadable one); the message says why."""


def _has_levels(audit: Mapping[str, Any]) -> bool:
    """Whether the audit is over gridworld levels (`kind`); without them the level sections are not
    applicable, rather than missing from an older audit."""
    return audit.get("kind", "gridworld") != "study"


def _absent(what: str, audit: Mapping[str, Any]) -> Safe:
    if not _has_levels(audit):
        return Safe(f'<p class="absent">{esc(what)}: {esc(NOT_COMPUTED)} (this scenario is a study without gridworld '
                    "levels; its results are under Scenario findings).</p>")
    return Safe(f'<p class="absent">{esc(what)}: {esc(NOT_COMPUTED)} (re-run <code>mesascope audit RUN_DIR</code> '
                "with a mesascope version that computes it).</p>")


def _load_audit(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "audit.json"
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a folder; pass the run folder written by `mesascope run`")
    if not path.exists():
        hint = "run `mesascope audit RUN_DIR` first" if (run_dir / "run.json").exists() else "pass the --out folder of `mesascope run`"
        raise ReportError(f"{run_dir} has no audit.json; {hint}")
    return read_json_object(path, holds="a mesascope audit", hint=f"; re-run `mesascope audit {run_dir}`", error=ReportError)


def _seed_label(system: Mapping[str, Any], index: int) -> str:
    return f"seed {system.get('seed', index)}"


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _objectives(audit: Mapping[str, Any]) -> list[str]:
    goals = list(audit.get("candidate_goals") or [])
    names = ["base", "intended"] + [g for g in goals if g not in ("base", "intended")]
    systems = audit.get("systems") or []
    present = set(_get(systems[0], "scores", "deploy") or {}) if systems else set()
    return [n for n in names if n in present] or sorted(present)


# ---------------------------------------------------------------------------------------------- sections


def _overview(audit: Mapping[str, Any], run_meta: Mapping[str, Any]) -> Safe:
    params = audit.get("scenario_params") or {}
    audit_cfg = audit.get("audit") or {}
    kv = [
        ("scenario", audit.get("scenario")),
        ("scenario parameters", ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items()) or "defaults"),
        ("base optimizer", audit.get("optimizer", "ppo")),
        ("preset", audit.get("preset")),
        ("seeds", ", ".join(str(s) for s in audit.get("seeds") or [])),
        ("audited levels", f"{audit_cfg['n_train']} train, {audit_cfg['n_deploy']} deploy (exact, key {audit_cfg.get('seed', '?')})"
         if {"n_train", "n_deploy"} <= set(audit_cfg) else None),
        ("discount", audit.get("gamma")),
        ("started", run_meta.get("started")),
        ("mesascope", audit.get("mesascope_version")),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in kv if v not in (None, ""))
    body = [
        f"<p>{esc(audit.get('description') or 'No description recorded.')}</p>",
        f'<p class="finding"><strong>Expected finding.</strong> {esc(audit.get("expected_finding") or "none recorded")}</p>',
        f'<dl class="kv">{dl}</dl>',
    ]
    objectives = audit.get("objectives") or {}
    if objectives:
        features = sorted({f for w in objectives.values() for f in w})
        rows = [[name, *[w.get(f, 0.0) for f in features]] for name, w in objectives.items()]
        body.append("<h3>Objectives (feature weights)</h3>")
        body.append(table(["objective", *features], rows, numeric=range(1, len(features) + 1), table_id="objectives-table"))
    return section("overview", "Scenario", body)


def _summary(audit: Mapping[str, Any]) -> Safe:
    systems = audit.get("systems") or []
    if not systems or not _get(systems[0], "scores"):
        return section("summary", "Summary", [_absent("Scores", audit)])
    goals = list(audit.get("candidate_goals") or [])
    uniform = _get(audit, "baselines", "uniform") or {}

    def mean(split: str, obj: str) -> float | None:
        xs = [v for s in systems if (v := _get(s, "scores", split, obj)) is not None]
        return float(np.mean(xs)) if xs else None

    cards = [
        ("train", "J_base on train", mean("train", "base"), "mean over seeds; 1 optimal, 0 uniform"),
        ("deploy", "J_intended on deploy", mean("deploy", "intended"), "mean over seeds; 1 optimal, 0 uniform"),
    ]
    for g in goals:
        xs = [v for s in systems if (v := _get(s, "first_reached", "deploy", g)) is not None]
        base = _get(uniform, "first_reached", "deploy", g)
        if xs:
            cards.append(("deploy", f"{g} reached first on deploy", float(np.mean(xs)),
                          f"uniform-random: {fmt(base)}" if base is not None else "no baseline"))
    card_html = "".join(
        f'<div class="card {kind}"><div class="k">{esc(k)}</div><div class="v">{esc(fmt(v))}</div><div class="s">{esc(s)}</div></div>'
        for kind, k, v, s in cards
    )
    counts = audit.get("informative_levels") or {}
    n_levels = audit.get("audit") or {}

    def head(sp: str, o: str, label: str) -> str:
        n = _get(counts, sp, o)
        return f"{sp} {label}" + (f" (n={n}/{n_levels.get(f'n_{sp}')})" if n is not None else "")

    def with_interval(s: Mapping[str, Any], sp: str, o: str) -> Any:
        value, interval = _get(s, "scores", sp, o), _get(s, "intervals", sp, o)
        if value is None or not interval:
            return value
        return Safe(f'{esc(fmt(value))}<span class="interval">{esc(fmt(interval[0]))} to {esc(fmt(interval[1]))}</span>')

    def behavioral(s: Mapping[str, Any]) -> Any:
        choice = _get(s, "behavioral", "deploy", "objective")
        if not choice:
            return None
        if not choice.get("name"):
            return Safe(f'unexplained<span class="interval">best fit {esc(fmt(choice.get("fit_quality")))} nats/step</span>')
        return Safe(f'{esc(str(choice["name"]).removeprefix("goal:"))}'
                    f'<span class="interval">fit {esc(fmt(choice.get("fit_quality")))} nats/step</span>')

    headers = [
        "system", head("train", "base", "J_base"), head("train", "intended", "J_intended"), head("deploy", "base", "J_base"),
        head("deploy", "intended", "J_intended"), "deploy behavioral objective", *[f"deploy {g} first" for g in goals],
    ]
    rows = []
    for i, s in enumerate(systems):
        rows.append([_seed_label(s, i),
                     *[with_interval(s, sp, o) for sp in ("train", "deploy") for o in ("base", "intended")],
                     behavioral(s),
                     *[_get(s, "first_reached", "deploy", g) for g in goals]])
    numeric = [c for c in range(1, len(headers)) if c != 5]
    body_rows = table(headers, rows, numeric=numeric, table_id="summary-table",
                      caption="J: exact normalised score (SPEC.md section 2), the mean over the n audited levels that are "
                              "informative for its objective (on the others every policy scores the same), with its 95% "
                              "bootstrap interval over levels. Behavioral objective: the best candidate goal whose fit "
                              "reaches kappa, else the IRL reward, else unexplained (SPEC.md section 4). "
                              "'first': probability the goal is reached before the other candidate goals.")
    # The mean and uniform rows get their own styling: append them to the generated table.
    extra = []
    mean_row = ["mean", *[mean(sp, o) for sp in ("train", "deploy") for o in ("base", "intended")], "",
                *[float(np.mean([_get(s, "first_reached", "deploy", g) for s in systems])) for g in goals]]
    extra.append(("mean", mean_row))
    if uniform:
        extra.append(("baseline", ["uniform-random", *[_get(uniform, "scores", sp, o) for sp in ("train", "deploy") for o in ("base", "intended")],
                                   "", *[_get(uniform, "first_reached", "deploy", g) for g in goals]]))
    tail = "".join(
        f'<tr class="{cls}"><th scope="row">{esc(r[0])}</th>' + "".join(f'<td class="num">{esc(fmt(c))}</td>' for c in r[1:]) + "</tr>"
        for cls, r in extra
    )
    body_rows = Safe(body_rows.replace("</tbody>", tail + "</tbody>"))
    return section("summary", "Summary", [f'<div class="cards">{card_html}</div>', _glance(audit), f'<div class="scroll">{body_rows}</div>'])


def _glance(audit: Mapping[str, Any]) -> str:
    """One line per school: its verdicts counted over seeds (the full table is under Verdicts)."""
    systems = audit.get("systems") or []
    counts: dict[str, dict[str, int]] = {}
    for s in systems:
        for school, v in (s.get("verdicts") or {}).items():
            label = str((v or {}).get("label"))
            counts.setdefault(school, {}).setdefault(label, 0)
            counts[school][label] += 1
    if not counts:
        return ""
    order = [k for k in SCHOOL_TITLES if k in counts] + [k for k in counts if k not in SCHOOL_TITLES]
    items = "".join(
        f"<li><strong>{esc(SCHOOL_TITLES.get(k, k))}</strong>: "
        + "; ".join(f"{esc(label)} ({n}/{len(systems)})" for label, n in counts[k].items())
        + "</li>"
        for k in order
    )
    return f'<div class="glance"><h3>Verdicts at a glance</h3><ul>{items}</ul></div>'



def _scores(audit: Mapping[str, Any]) -> Safe:
    systems = audit.get("systems") or []
    objectives = _objectives(audit)
    if not systems or not objectives:
        return section("scores", "Scores over seeds", [_absent("Scores", audit)])
    data = {sp: {o: [v for s in systems if (v := _get(s, "scores", sp, o)) is not None] for o in objectives} for sp in ("train", "deploy")}
    uniform = _get(audit, "baselines", "uniform", "scores") or {}
    svg = score_distributions_svg(data, objectives, uniform)
    rows = []
    counts = audit.get("informative_levels") or {}
    for o in objectives:
        for sp in ("train", "deploy"):
            xs = np.asarray(data[sp][o], float)
            all_levels = [v for s in systems if (v := _get(s, "scores_all_levels", sp, o)) is not None]
            rows.append([f"J_{o}", sp, _get(counts, sp, o), xs.mean() if xs.size else None, xs.std() if xs.size else None,
                         xs.min() if xs.size else None, xs.max() if xs.size else None, _get(uniform, sp, o),
                         float(np.mean(all_levels)) if all_levels else None])
    tbl = table(["score", "split", "informative levels", "mean", "std", "min", "max", "uniform-random",
                 "mean over all levels (for comparison)"], rows, numeric=range(2, 9), table_id="scores-table",
                caption="Means over seeds of each system's mean over the informative levels. The last column counts "
                        "uninformative levels as J = 1, as mesascope did before SPEC.md section 2 forbade it; it feeds no property.")
    return section(
        "scores", "Scores over seeds",
        [f'<figure class="plot">{svg}<figcaption>Each dot is one seed, the bar its mean; train in blue, deploy in orange. '
         "J = 1 is optimal, J = 0 is the uniform-random policy.</figcaption></figure>", f'<div class="scroll">{tbl}</div>'],
        lead="The normalised score of every trained system under the base objective, the intended objective and each candidate goal.",
    )


def _first_reached(audit: Mapping[str, Any]) -> Safe:
    systems = audit.get("systems") or []
    goals = list(audit.get("candidate_goals") or [])
    if not systems or not goals or not _get(systems[0], "first_reached"):
        return section("first-reached", "Which goal is reached first", [_absent("First-reached probabilities", audit)])
    data = {sp: {g: [v for s in systems if (v := _get(s, "first_reached", sp, g)) is not None] for g in goals} for sp in ("train", "deploy")}
    uniform = _get(audit, "baselines", "uniform", "first_reached") or {}
    svg = first_reached_svg(data, goals, uniform)
    rows = []
    for sp in ("train", "deploy"):
        for g in goals:
            xs = np.asarray(data[sp][g], float)
            base = _get(uniform, sp, g)
            m = xs.mean() if xs.size else None
            rows.append([g, sp, m, base, (m / base) if (m is not None and base) else None])
    tbl = table(["goal", "split", "systems (mean)", "uniform-random", "ratio"], rows, numeric=(2, 3, 4), table_id="first-reached-table")
    return section(
        "first-reached", "Which goal is reached first",
        [f'<figure class="plot">{svg}<figcaption>Bars: mean over seeds; dots: seeds; dashed line: the uniform-random policy. '
         "Exact probabilities (the state distribution is propagated, not sampled).</figcaption></figure>", f'<div class="scroll">{tbl}</div>'],
        lead="The probability that each candidate goal is reached before the others within the episode limit, against chance.",
    )


def _behavioral(audit: Mapping[str, Any]) -> Safe:
    systems = audit.get("systems") or []
    if not systems or not _get(systems[0], "behavioral"):
        return section("behavioral", "Behavioral objective", [_absent("The behavioral objective", audit)])
    goals = list(audit.get("candidate_goals") or [])
    body: list[str] = []
    for sp in ("train", "deploy"):
        rows = []
        for i, s in enumerate(systems):
            post = _get(s, "behavioral", sp, "goal_posterior") or {}
            g_entries = post.get("goals") or {}
            rows.append([_seed_label(s, i), post.get("best"),
                         *[_get(g_entries, g, "posterior") for g in goals],
                         *[_get(g_entries, g, "fit_quality") for g in goals],
                         "yes" if post.get("explained") else "no"])
        headers = ["system", "best goal", *[f"P({g})" for g in goals], *[f"fit {g}" for g in goals], "explained"]
        body.append(f"<h3>Goal posterior on {esc(sp)} levels</h3>")
        body.append(f'<div class="scroll">{table(headers, rows, numeric=range(2, 2 + 2 * len(goals)), table_id=f"posterior-{sp}-table")}</div>')
    features: list[str] = []
    for s in systems:
        for f in _get(s, "behavioral", "deploy", "irl", "weights") or {}:
            if f not in features:
                features.append(f)
    if features:
        rows = []
        for sp in ("train", "deploy"):
            for i, s in enumerate(systems):
                irl = _get(s, "behavioral", sp, "irl") or {}
                w = irl.get("weights") or {}
                rows.append([_seed_label(s, i), sp, *[w.get(f) for f in features], irl.get("loglik_per_step"), irl.get("uniform_loglik_per_step")])
        body.append("<h3>IRL weights (maximum causal entropy)</h3>")
        body.append(f'<div class="scroll">{table(["system", "split", *features, "log-lik/step", "uniform log-lik/step"], rows, numeric=range(2, 4 + len(features)), table_id="irl-table")}</div>')
    return section(
        "behavioral", "Behavioral objective", body,
        lead="What each system's behaviour is best explained as optimizing (SPEC.md section 4): a Boltzmann-rational "
             "posterior over the candidate goals (fit = gain over the uniform policy in nats per step), and the "
             "feature weights recovered by exact maximum-causal-entropy IRL.",
    )


def _distances(audit: Mapping[str, Any]) -> Safe:
    systems = audit.get("systems") or []
    if not systems or not _get(systems[0], "distances", "deploy", "epic"):
        return section("distances", "EPIC distances", [_absent("EPIC distances", audit)])
    pairs: list[str] = []
    for s in systems:
        for p in _get(s, "distances", "deploy", "epic") or {}:
            if p not in pairs:
                pairs.append(p)
    body = []
    for sp in ("deploy", "train"):
        rows = [[p.replace("~", " ~ "), *[_get(s, "distances", sp, "epic", p) for s in systems]] for p in pairs]
        body.append(f"<h3>On {esc(sp)} coverage</h3>")
        body.append(f'<div class="scroll">{table(["pair", *[_seed_label(s, i) for i, s in enumerate(systems)]], rows, numeric=range(1, 1 + len(systems)), table_id=f"epic-{sp}-table")}</div>')
    return section(
        "distances", "EPIC distances", body,
        lead="EPIC distance sqrt((1 − ρ)/2) between every pair of objectives (SPEC.md section 3): 0 means the same "
             "objective up to potential shaping and scale, 1 the opposite. Every objective is compared as a reward on "
             "transitions R(s, a, s'), its next-state part kept as a function of s', so shaping cancels. 'irl' is the MCE "
             "IRL reward above; 'mesa' the mesa-objective through its bridge and 'irl_mesa' the IRL fit over the "
             "mesa-optimizer's own perception, when there is one.",
    )


def _mesa(audit: Mapping[str, Any]) -> Safe:
    systems = audit.get("systems") or []
    with_mesa = [(i, s) for i, s in enumerate(systems) if s.get("mesa_objective")]
    if not with_mesa:
        return section("mesa", "Mesa-objective", [
            '<p class="absent">No system in this run has an explicit, readable mesa-objective recorded (a trained '
            "policy network has none). The properties that need one are undefined for these systems, not failed.</p>"])
    features: list[str] = []
    for _, s in with_mesa:
        for f in s["mesa_objective"].get("weights") or {}:
            if f not in features:
                features.append(f)
    def epic(s: Mapping[str, Any], other: str) -> Any:  # noqa: E306
        table_ = _get(s, "distances", "deploy", "epic") or {}
        return table_.get(f"mesa~{other}", table_.get(f"{other}~mesa"))

    rows = [[_seed_label(s, i), *[(s["mesa_objective"].get("weights") or {}).get(f) for f in features],
             epic(s, "base"), epic(s, "intended")]
            for i, s in with_mesa]
    first = with_mesa[0][1]["mesa_objective"]
    bridge = first.get("bridge") or {}
    body = [
        f'<div class="scroll">{table(["system", *features, "EPIC to base (deploy)", "EPIC to intended (deploy)"], rows, numeric=range(1, 3 + len(features)), table_id="mesa-table")}</div>',
        f'<dl class="kv"><dt>domain</dt><dd>{esc(first.get("domain"))}</dd><dt>bridge</dt><dd>{esc(bridge.get("name"))}</dd>'
        f'<dt>bridge note</dt><dd>{esc(bridge.get("note"))}</dd></dl>',
    ]
    return section("mesa", "Mesa-objective", body, lead="The objective each explicit mesa-optimizer learned, read off its parameters.")


def _properties(audit: Mapping[str, Any]) -> Safe:
    systems = audit.get("systems") or []
    if not systems or not any(s.get("properties") for s in systems):
        return section("properties", "Properties", [_absent("Properties (SPEC.md section 5)", audit)])
    thresholds = audit.get("thresholds") or {}
    body = []
    if thresholds:
        body.append('<p>Thresholds: ' + ", ".join(f"<code>{esc(k)}</code> = {esc(fmt(v))}" for k, v in thresholds.items()) + "</p>")
    names: list[str] = []
    for s in systems:
        for n in s.get("properties") or {}:
            if n not in names:
                names.append(n)
    rows = []
    for n in names:
        entries = [(s.get("properties") or {}).get(n) for s in systems]
        known = next((e for e in entries if e), {})
        cells = []
        for e in entries:
            if not e:
                cells.append(Safe(badge(None)))
                continue
            detail = ""
            if e.get("score") is not None:
                detail = f'<br><span class="mono nowrap">{esc(fmt(e.get("score")))}'
                if e.get("threshold") is not None:
                    detail += f" vs {esc(fmt(e.get('threshold')))}"
                detail += "</span>"
            if e.get("interval"):
                lo, hi = e["interval"]
                count = e.get("n_informative")
                detail += (f'<span class="interval">95%: {esc(fmt(lo))} to {esc(fmt(hi))}'
                           + (f", n={count}" if count is not None else "") + "</span>")
            elif e.get("state") == "undefined" and (e.get("evidence") or {}).get("reason"):
                detail += f'<span class="interval">{esc(e["evidence"]["reason"])}</span>'
            cells.append(Safe(str(badge(e.get("state"))) + marginal_badge(e.get("marginal")) + detail))
        rows.append([n.replace("_", " "), known.get("school") or "", *cells, known.get("definition") or ""])
    headers = ["property", "school", *[_seed_label(s, i) for i, s in enumerate(systems)], "definition"]
    body.append(f'<div class="scroll">{table(headers, rows, table_id="properties-table")}</div>')
    return section("properties", "Properties", body,
                   lead="Each property of SPEC.md section 5 answers holds, fails or undefined (undefined is a real answer: "
                        "e.g. inner alignment without a mesa-objective), with the score and threshold it was read from.")


def _graphs(audit: Mapping[str, Any]) -> Safe:
    systems = audit.get("systems") or []
    if not systems or not any(s.get("graphs") for s in systems):
        return section("graphs", "And-or graphs", [_absent("The and-or graphs (SPEC.md section 6)", audit)])
    legend = (
        '<div class="legend"><span><span class="sw red"></span>generalization-focused</span>'
        '<span><span class="sw yellow"></span>objective-focused</span><span><span class="sw blue"></span>both approaches</span>'
        '<span><span class="sw dashed"></span>pseudo-equivalence</span>'
        '<span><span class="box" style="background:var(--holds-bg)"></span>holds</span>'
        '<span><span class="box" style="background:var(--fails-bg)"></span>fails</span>'
        '<span><span class="box" style="background:var(--undef-bg)"></span>undefined</span></div>'
    )
    body = [legend]
    for i, s in enumerate(systems):
        figures = graph_figures(s, prefix=f"s{i}")
        parts = []
        for fig in figures:
            paths = fig.paths
            facts = []
            for key, title in (("certifying_paths", "certifying paths"), ("broken_paths", "broken paths"), ("counterexamples", "counterexamples")):
                items = paths.get(key)
                if items is not None:
                    facts.append(f"<strong>{esc(title)}:</strong> {esc(_describe(items))}")
            drawing = (
                f'<figure class="graph" data-graph="{esc(fig.name)}">{fig.svg}<figcaption>{esc(fig.title)}</figcaption></figure>'
                if fig.svg
                else f'<p class="note">{esc(fig.note)}</p>'
            )
            node_rows = [[label, Safe(badge(state)), score] for _, label, state, score in fig.nodes]
            node_table = table(["node", "measured state", "score"], node_rows, numeric=(2,), classes="graph-nodes")
            note = f'<p class="note">{esc(fig.note)}</p>' if fig.svg and fig.note else ""
            parts.append(
                f"<h3>{esc(fig.name)} graph</h3>{drawing}{note}<p>{'<br>'.join(facts)}</p>"
                f"<details><summary>node states as a table</summary>{node_table}</details>"
            )
        if not figures:
            parts.append(_absent("Graphs for this system", audit))
        opened = " open" if i == 0 else ""
        body.append(f"<details class=\"system\"{opened}><summary>{esc(_seed_label(s, i))}</summary>{''.join(parts)}</details>")
    return section("graphs", "And-or graphs", body,
                   lead="The graphs of seed 000 (SPEC.md section 6) with each node coloured by its measured state; a thick "
                        "edge marked 'counterexample' has antecedents that hold and a consequent that fails.")


def _describe(items: Any) -> str:
    if not items:
        return "none"
    if isinstance(items, (list, tuple)):
        return "; ".join(_describe_one(x) for x in items)
    return _describe_one(items)


def _describe_one(item: Any) -> str:
    if isinstance(item, Mapping):
        name = item.get("name") or item.get("path") or item.get("edge") or item.get("id")
        extra = item.get("breaks_at") or item.get("reason")
        if name is not None:
            return f"{name} (breaks at {extra})" if item.get("breaks_at") else (f"{name}: {extra}" if extra else str(name))
        return ", ".join(f"{k}={v}" for k, v in item.items())
    if isinstance(item, (list, tuple)):
        return " → ".join(str(x) for x in item)
    return str(item)


def _verdicts(audit: Mapping[str, Any]) -> Safe:
    systems = audit.get("systems") or []
    if not systems or not any(s.get("verdicts") for s in systems):
        return section("verdicts", "Verdicts by school", [_absent("Verdicts (SPEC.md section 7)", audit)])
    schools: list[str] = [k for k in SCHOOL_TITLES if any(k in (s.get("verdicts") or {}) for s in systems)]
    for s in systems:
        for k in s.get("verdicts") or {}:
            if k not in schools:
                schools.append(k)
    rows = []
    for school in schools:
        cells = []
        for s in systems:
            v = (s.get("verdicts") or {}).get(school)
            if not v:
                cells.append(Safe('<span class="verdict-reason">–</span>'))
                continue
            cells.append(Safe(f'<span class="verdict-label">{esc(v.get("label"))}{marginal_badge(v.get("marginal"))}</span>'
                              f'<span class="verdict-reason">{esc(v.get("reason"))}</span>'))
        rows.append([SCHOOL_TITLES.get(school, school), *cells])
    body = [f'<div class="scroll">{table(["school", *[_seed_label(s, i) for i, s in enumerate(systems)]], rows, table_id="verdict-table")}</div>']
    inv_rows = []
    for i, s in enumerate(systems):
        for name, inv in (s.get("invariants") or {}).items():
            holds = inv.get("holds")
            detail = inv.get("detail") or "; ".join(inv.get("contradictions") or []) or "every label is established by its property"
            before = inv.get("before_training")
            if before:
                detail = f"before training: {before.get('content')} ({before.get('detail')}). After training: {detail}"
            inv_rows.append([_seed_label(s, i), name.replace("_", " "),
                             Safe(badge("holds" if holds else "fails" if holds is False else None)), detail])
    if inv_rows:
        body.append("<h3>Invariants</h3>")
        body.append(table(["system", "invariant", "state", "detail"], inv_rows, table_id="invariants-table",
                          caption="A failing invariant is a bug in mesascope, not a finding."))
    return section("verdicts", "Verdicts by school", body,
                   lead="The deployment failure (if any) classified under every school at once (SPEC.md section 7), "
                        "each in that school's own terms.")


def _training(run_dir: Path, audit: Mapping[str, Any]) -> Safe:
    path = run_dir / "training.npz"
    if not path.exists():
        return section("training", "Learning curves", [_absent("Learning curves (training.npz)", audit)])
    try:
        with np.load(path) as data:
            curves = {k: np.asarray(data[k]) for k in data.files}
    except Exception as err:  # noqa: BLE001 - a damaged file costs this section only
        return section("training", "Learning curves", [f'<p class="note">training.npz could not be read ({esc(type(err).__name__)}).</p>'])
    config = audit.get("config") or {}
    steps = None
    if isinstance(config.get("num_envs"), int) and isinstance(config.get("num_steps"), int):
        steps = config["num_envs"] * config["num_steps"]
    seeds = list(audit.get("seeds") or range(max((v.shape[0] for v in curves.values() if v.ndim == 2), default=0)))
    svg = learning_curves_svg(curves, seeds, steps)
    return section("training", "Learning curves", [f'<figure class="plot">{svg}<figcaption>One thin line per seed, the mean in black.</figcaption></figure>'],
                   lead="What the base optimizer logged during training (training.npz).")


def _seed_of(path: Path) -> tuple[int, str]:
    m = re.search(r"(\d+)", path.stem)
    return (int(m.group(1)) if m else 1 << 30, path.name)


def _pictures(run_dir: Path, audit: Mapping[str, Any]) -> Safe:
    folder = run_dir / "pictures"
    files = sorted(folder.glob("*.png"), key=_seed_of) if folder.is_dir() else []
    body = []
    if audit.get("pictures_error"):
        body.append(f'<p class="note">Drawing the pictures failed: {esc(audit["pictures_error"])}</p>')
    if not files:
        body.append(_absent("Pictures of the systems (pictures/*.png)", audit))
        return section("pictures", "What the systems do", body)
    figs = [
        _png_figure(f, f"{f.stem.replace('-', ' ')}: left, the first audited train level; right, the first audited deploy level.")
        for f in files
    ]
    body.append(f'<div class="pictures">{"".join(figs)}</div>')
    return section("pictures", "What the systems do", body,
                   lead="Each system's most likely action in every square, followed from the start: the path it takes on a train level and on a deploy level.")


def _png_figure(path: Path, caption: str, css_class: str = "level-picture") -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img class="{esc(css_class)}" alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def _measures_table(audit: Mapping[str, Any]) -> str | None:
    """The scenario's own exact measures: one row per measure and policy, train and deploy columns."""
    declared = audit.get("scenario_measures")
    if not isinstance(declared, Mapping) or not declared:
        return None
    rows = []

    def cell(by_split: Any, intervals: Any, split: str) -> Any:
        value = (by_split or {}).get(split) if isinstance(by_split, Mapping) else None
        if not isinstance(value, (int, float)):
            return "-"
        iv = (intervals or {}).get(split) if isinstance(intervals, Mapping) else None
        return f"{value:.3f}" + (f" [{iv[0]:.2f}, {iv[1]:.2f}]" if isinstance(iv, list) and len(iv) == 2 and None not in iv else "")

    for name, block in declared.items():
        if not isinstance(block, Mapping):
            continue
        if block.get("of") == "levels":
            rows.append([name, "every base-optimal policy / the levels", cell(block.get("value"), block.get("interval"), "train"),
                         cell(block.get("value"), block.get("interval"), "deploy"), block.get("description", "")])
            continue
        policies = [(f"seed {e.get('seed')}", e) for e in audit.get("systems") or [] if isinstance(e, Mapping)]
        policies.append(("uniform", (audit.get("baselines") or {}).get("uniform") or {}))
        for who, entry in policies:
            values = (entry.get("scenario_measures") or {}).get(name)
            intervals = (entry.get("scenario_measure_intervals") or {}).get(name)
            rows.append([name, who, cell(values, intervals, "train"), cell(values, intervals, "deploy"), block.get("description", "")])
    if not rows:
        return None
    return "<h3>The scenario's own measures</h3>" + table(["measure", "policy", "train", "deploy", "what it is"], rows,
                                                          table_id="scenario-measures-table")


def _findings(run_dir: Path, audit: Mapping[str, Any]) -> Safe | None:
    """The expected finding's checks, the scenario's own measures, and a study's tables, plots and numbers."""
    if "findings" not in audit and "finding" not in audit and "scenario_measures" not in audit:
        return None
    raw = audit.get("findings", {})
    findings = raw if isinstance(raw, Mapping) else {"value": raw}
    body: list[str] = []
    finding = audit.get("finding") if isinstance(audit.get("finding"), Mapping) else {}
    held = finding.get("holds", audit.get("finding_holds"))
    if held is not None:
        body.append(f'<p>{badge("holds" if held else "fails")} the expected finding was '
                    f'{"reproduced" if held else "NOT reproduced"} by this run.</p>')
    checks = finding.get("checks") if finding else findings.get("checks")
    if isinstance(checks, list) and checks:
        rows = [[c.get("name"), Safe(esc(f"{c['measured']:.4g}" if isinstance(c.get("measured"), float) else c.get("measured"))),
                 c.get("expected"), Safe(badge("holds" if c.get("holds") else "fails"))] for c in checks if isinstance(c, Mapping)]
        body.append(table(["check", "measured", "expected", "holds"], rows, numeric=(1,), table_id="checks-table"))
    measures = _measures_table(audit)
    if measures:
        body.append(measures)
    for name, rows in (findings.get("tables") or {}).items():
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], Mapping):
            continue
        cols = list(rows[0])
        cells = [[r.get(c) if isinstance(r.get(c), (int, float, str)) or r.get(c) is None else json.dumps(r.get(c)) for c in cols] for r in rows]
        body.append(f"<h3>{esc(name)}</h3>")
        body.append(f'<div class="scroll">{table(cols, cells)}</div>')
    plots = [run_dir / p for p in audit.get("plots") or [] if isinstance(p, str)]
    plots = [p for p in plots if p.suffix == ".png" and p.is_file() and run_dir.resolve() in p.resolve().parents]
    if plots:
        body.append('<div class="pictures wide">' + "".join(_png_figure(p, p.stem.replace("-", " "), "plot-picture") for p in plots) + "</div>")
    rest = {k: v for k, v in findings.items() if k not in ("checks", "tables")}
    if rest:
        text = json.dumps(rest, indent=2, sort_keys=False, default=str)
        body.append(f'<details><summary>all recorded numbers</summary><pre class="json">{esc(text)}</pre></details>')
    return section("findings", "Scenario findings", body,
                   lead="The expected finding checked on this run, and what this scenario measures beyond the common audit.")


def _inside(run_dir: Path) -> Safe | None:
    """What `mesascope probe` and `steer` wrote into `inside/`, or None when neither ran."""
    folder = run_dir / "inside"
    probes = folder / "probes.json"
    steers = sorted(folder.glob("steer-*.json")) if folder.is_dir() else []
    if not probes.exists() and not steers:
        return None
    body: list[str] = []
    try:
        if probes.exists():
            result = read_json_object(probes)
            layers = list(result["layers"])
            body.append(f"<h3>Linear probes ({esc(result['levels'])} levels per split, {esc(result['folds'])} folds over levels)</h3>")
            rows = [[split, target, *(cells[layer] for layer in layers), cells["majority"]]
                    for split, target, cells in probes_table(result)]
            body.append(table(["split", "target", *layers, "best constant"], rows,
                              caption="Held-out accuracy, mean over seeds (in brackets: the same probe on shuffled targets)."))
        for path in steers:
            result = read_json_object(path)
            cols, rows = steer_table(result)
            where = "" if result.get("square") is None else f" at square ({result['square'][0]}, {result['square'][1]})"
            body.append(f"<h3>Steering: {esc(result['coef'])} x the {esc(result['object'])} vector{esc(where)} "
                        f"at {esc(result['layer'])}</h3>")
            body.append(table(cols, rows, caption=f"Exact, on {result['levels']} deploy levels: unedited -> steered."))
    except (KeyError, TypeError, ValueError, MesascopeError) as err:  # a damaged file costs this section only
        body.append(f'<p class="note">inside/ could not be read ({esc(type(err).__name__)}: {esc(err)}).</p>')
    return section("inside", "Inside the network", body,
                   lead="Written by `mesascope probe` and `mesascope steer` (inside/*.json): what the layers encode, "
                        "and what editing them does.")


ADVERSARIAL_ROWS = (
    ("J_intended on its adversarial levels", "j_intended_adversarial"),
    ("J_intended on held-out deploy levels", "j_intended_deploy"),
    ("J_base on train levels", "j_base_train"),
    ("behavioral objective", "behavioral_objective"),
    ("EPIC(behavioral, intended), deploy", "epic_behavioral_intended_deploy"),
    ("Hubinger", "hubinger"),
)


def _adversarial(run_dir: Path) -> Safe | None:
    """Before and after adversarial fine-tuning (`mesascope adversarial`), or None for other runs."""
    path = run_dir / "adversarial.json"
    if not path.exists():
        return None
    body: list[str] = []
    try:
        result = read_json_object(path)
        seeds = result["seeds"]
        cols = ["measure", *[f"seed {r['seed']}: before → after" for r in seeds]]
        rows = [[label, *[f"{_cell(r['before'][key])} → {_cell(r['after'][key])}" for r in seeds]]
                for label, key in ADVERSARIAL_ROWS]
        goals = sorted({g for r in seeds for g in (r["before"].get("first_reached_deploy") or {})})
        for g in goals:
            rows.append([f"P({g} first), deploy", *[f"{_cell((r['before'].get('first_reached_deploy') or {}).get(g))} → "
                                                   f"{_cell((r['after'].get('first_reached_deploy') or {}).get(g))}" for r in seeds]])
        rows.append(["intended regret of the searched levels (start → end of search)",
                     *[f"{_cell(r['search']['regret_start'])} → {_cell(r['search']['regret_end'])}" for r in seeds]])
        cfg = result.get("config") or {}
        body.append(table(cols, rows, table_id="adversarial-table",
                          caption=f"{cfg.get('levels')} levels per system, {cfg.get('rounds')} rounds of edits, "
                                  f"{cfg.get('steps')} fine-tuning steps; the original run: {result.get('from')}."))
    except (KeyError, TypeError, ValueError, MesascopeError) as err:  # a damaged file costs this section only
        body.append(f'<p class="note">adversarial.json could not be read ({esc(type(err).__name__)}: {esc(err)}).</p>')
    return section("adversarial", "Adversarial fine-tuning: before and after", body,
                   lead="Each system was fine-tuned with the base objective on the levels where its exact intended regret "
                        "was highest (`mesascope adversarial`); before is the original run's audit, after is this one's, "
                        "on the same held-out levels.")


def _cell(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3f}".replace("-", "−")
    return "–" if x is None else str(x)


def build_run_report(run_dir: str | Path) -> str:
    """The report of a run folder as one self-contained HTML string.

    Args:
        run_dir: A folder with `audit.json` (and optionally `run.json`, `training.npz`, `pictures/`).

    Returns:
        The HTML text. Everything taken from the files is escaped; nothing is fetched from elsewhere.

    Raises:
        ReportError: if the folder has no readable audit.json.
    """
    run_dir = Path(run_dir)
    audit = _load_audit(run_dir)
    try:
        run_meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        run_meta = run_meta if isinstance(run_meta, dict) else {}
    except (OSError, ValueError):
        run_meta = {}
    sections = [
        _overview(audit, run_meta),
        _summary(audit),
        _scores(audit),
        _first_reached(audit),
        _behavioral(audit),
        _distances(audit),
        _mesa(audit),
        _properties(audit),
        _graphs(audit),
        _verdicts(audit),
        _training(run_dir, audit),
        _pictures(run_dir, audit),
    ]
    toc = list(SECTION_IDS)
    extra = _findings(run_dir, audit)
    if extra is not None:
        sections.insert(1, extra)
        toc.insert(1, ("findings", "Findings"))
    inside = _inside(run_dir)
    if inside is not None:
        sections.append(inside)
        toc.append(("inside", "Inside the network"))
    adversarial = _adversarial(run_dir)
    if adversarial is not None:
        sections.insert(1, adversarial)
        toc.insert(1, ("adversarial", "Before and after"))
    title = f"{audit.get('scenario', 'run')} · mesascope report"
    nav = "".join(f'<li><a href="#{esc(i)}">{esc(t)}</a></li>' for i, t in toc)
    n = len(audit.get("systems") or [])
    meta = f"preset {audit.get('preset', '?')} · {n} system{'s' if n != 1 else ''} · " + ("exact audit" if _has_levels(audit) else "study")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="top"><div class="wrap"><h1>{esc(audit.get("scenario", "run"))}</h1>'
        f'<span class="meta">{esc(meta)}</span></div></header>'
        f'<nav class="toc" aria-label="contents"><ol>{nav}</ol></nav>'
        f'<main class="wrap">{"".join(sections)}</main>'
        f"<footer>written by mesascope {esc(audit.get('mesascope_version', ''))} from {esc(run_dir.name)}/audit.json</footer>"
        "</body></html>\n"
    )


def write_run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `report.html` into the run folder (or to `out`) and return its path.

    Raises:
        ReportError: if the folder has no readable audit.json.
    """
    run_dir = Path(run_dir)
    text = build_run_report(run_dir)
    target = Path(out) if out is not None else run_dir / "report.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)  # never leave a half-written report behind
    return target
