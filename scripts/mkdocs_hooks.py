"""MkDocs hooks for the documentation site (`mkdocs.yml` `hooks:`).

`on_files` adds generated pages, so that they cannot drift from the code:

* `catalog.md`: every registered scenario in full, read from the registry at build time (what
  `mesascope list` and `mesascope show ID` print);
* `api/<package>.md`: the API reference of each package, one mkdocstrings block per module found in
  `src/mesascope/<package>/` when the site is built (a module added, renamed or removed needs no edit
  here); `api/index.md` is written by hand.

Nothing is written into docs/; the generated pages exist only in the built site.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pathlib import Path

from mkdocs.structure.files import File, Files

CATALOG = "catalog.md"

SRC = Path(__file__).resolve().parent.parent / "src" / "mesascope"

API_PAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # page: (title, introduction, modules or packages, in order; a package expands to its modules)
    "core": ("Core: objectives and parameters",
             "The package itself, the core types every stage shares, and typed, range-checked parameters.",
             ("mesascope", "mesascope.types", "mesascope.params")),
    "scenarios": ("Scenarios",
                  "The one registry every kind of scenario lives in, the records it holds, the helpers a "
                  "finding's check is written with, the conformance checker, and every built-in scenario's "
                  "module (worked examples of the protocol; see [How to add a scenario](../adding-a-scenario.md)).",
                  ("mesascope.scenarios.base", "mesascope.scenarios.findings", "mesascope.scenarios.study",
                   "mesascope.scenarios.conformance", "mesascope.scenarios")),
    "levels": ("Levels", "The gridworld engine as pure JAX functions, level generators' helpers and the exact "
               "tabular view every audit solves.", ("mesascope.levels",)),
    "solve": ("Exact solver", "Exact dynamic programming on enumerable levels.", ("mesascope.solve",)),
    "measures": ("Measures", "Scores, first-reached probabilities, EPIC, the behavioral objective, shards and "
                 "the per-system `Measurements` every property reads.", ("mesascope.measures",)),
    "optimizers": ("Base optimizers", "PPO and its level curricula, evolution, gradient descent and the exhaustive optimizer.",
                   ("mesascope.optimizers",)),
    "systems": ("Systems", "Policies, mesa-optimizers, pointer mesa-optimizers and bridges.", ("mesascope.systems",)),
    "properties": ("Properties", "Thresholds and the properties of every school, from one system's `Measurements`.",
                   ("mesascope.properties",)),
    "graphs": ("And-or graphs", "The graphs as data, their three-valued evaluation and their rendering.",
               ("mesascope.graphs",)),
    "verdicts": ("Verdicts", "Every school's verdict and the audit's per-system block.", ("mesascope.verdicts",)),
    "experiments": ("Experiments", "Everything that writes run folders: plan and run, audit, reproduce, the "
                    "catalogue, the result store, sweeps and adversarial fine-tuning.",
                    ("mesascope.experiments.run", "mesascope.experiments.audit", "mesascope.experiments.reproduce",
                     "mesascope.experiments")),
    "report": ("Report", "HTML reports of runs and sweeps, and MLflow tracking.", ("mesascope.report",)),
    "adapters": ("Gymnasium adapter", "Scenarios as Gymnasium environments; outside policies as systems.",
                 ("mesascope.adapters",)),
}
"""The generated API pages, `api/<name>.md`, in the order of the navigation."""

_CODE = re.compile(r"(`[^`]*`)")


def _text(text: str) -> str:
    """Plain prose as Markdown: code spans kept, characters Markdown would read as syntax escaped."""
    parts = _CODE.split(" ".join(str(text).split()))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part)
        else:
            out.append(re.sub(r"([\\*\[\]<>|])", r"\\\1", part))
    return "".join(out)


def _cell(text: str) -> str:
    """A table cell: prose as `_text`, with pipes escaped inside code spans too."""
    return _text(text).replace("`|`", "`\\|`")


def _weights(weights: Any) -> str:
    return ", ".join(f"`{name}` {value:g}" for name, value in weights) or "none"


def _default(value: Any) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _scenario_section(scenario_id: str) -> list[str]:
    from mesascope.experiments.catalog import reproduce_command
    from mesascope.scenarios import get_scenario

    sc = get_scenario(scenario_id)
    lines = [f"### `{scenario_id}`", "", f"*{_text(sc.summary)}*", ""]
    head = f"**kind** {sc.kind} · **base optimizer** `{sc.optimizer}`"
    if sc.kind == "gridworld":
        head += " · **candidate goals** " + ", ".join(f"`{g.name}`" for g in sc.candidate_goals)
    lines += [head, "", _text(sc.description), ""]
    if sc.kind == "gridworld":
        lines += ["| objective | feature weights | valued |", "|---|---|---|"]
        for name, obj in sc.objectives().items():
            valued = "at first arrival (reach goal)" if obj.reach else "every transition"
            lines.append(f"| `{name}` | {_weights(obj.weights)} | {valued} |")
        lines.append("")
        if sc.measures:
            lines.append("Scenario measures (`audit.json` `scenario_measures`):")
            lines.append("")
            for m in sc.measures:
                of = "per system and for the uniform policy" if m.of_policy is not None else "once per split, no system"
                lines.append(f"- `{m.name}` ({of}): {_text(m.description)}")
            lines.append("")
    if sc.param_specs:
        lines += ["| parameter (`--param`) | type and range | default | what |", "|---|---|---|---|"]
        for p in sc.param_specs:
            lines.append(f"| `{p.name}` | {_cell(p.describe())} | `{_default(p.default)}` | {_cell(p.help)} |")
    else:
        lines.append("No parameters.")
    lines += ["", f"**Expected finding.** {_text(sc.expected_finding)}", ""]
    if sc.finding is None:
        lines.append("This scenario states no checkable finding.")
    else:
        for flag, spec in (("", sc.finding.fast), (" --full", sc.finding.full)):
            if spec is not None:
                lines.append(f"- `mesascope reproduce{flag} {scenario_id}` runs "
                             f"`{reproduce_command(scenario_id, spec, sc.kind)}`")
        for spec in sc.finding.also:
            lines.append(f"- also reproduced: `{reproduce_command(scenario_id, spec, sc.kind)}`")
        if sc.finding.fast is None:
            lines.append("- the fast configuration is skipped: this finding needs the `full` preset")
    return lines + [""]


def catalog_markdown() -> str:
    """The scenario catalogue page, from the registry."""
    from mesascope.scenarios import get_scenario, scenario_ids

    ids = scenario_ids()
    by_kind = {kind: [sid for sid in ids if get_scenario(sid).kind == kind] for kind in ("gridworld", "study")}
    lines = [
        "# Scenario catalogue",
        "",
        "Every registered scenario, generated from the registry when the site is built: what "
        "`mesascope list` and `mesascope show ID` print (`show` also lists the base optimizer's training "
        "settings and their preset values). Parameters are set with `--param NAME=VALUE`, checked against "
        "the types and ranges below before anything is written. What was measured on these scenarios is "
        "on [Scenarios and findings](scenarios.md).",
        "",
        "| id | kind | summary |",
        "|---|---|---|",
    ]
    for sid in ids:
        sc = get_scenario(sid)
        lines.append(f"| [`{sid}`](#{sid}) | {sc.kind} | {_cell(sc.summary)} |")
    lines.append("")
    titles = {"gridworld": "Gridworld scenarios", "study": "Studies"}
    for kind, kind_ids in by_kind.items():
        if not kind_ids:
            continue
        lines += [f"## {titles[kind]}", ""]
        for sid in kind_ids:
            lines += _scenario_section(sid)
    return "\n".join(lines) + "\n"


def _modules(name: str) -> list[str]:
    """`name` if it is a module; for a package, the package then each public module found on disk."""
    path = SRC.parent.joinpath(*name.split("."))
    if not path.is_dir():
        return [name]
    found = sorted(p.stem for p in path.glob("*.py") if not p.name.startswith("_"))
    has_docstring = (path / "__init__.py").read_text().lstrip().startswith(('"""', "r\"\"\""))
    return ([name] if has_docstring else []) + [f"{name}.{m}" for m in found]


def api_markdown(page: str) -> str:
    """One API page: a mkdocstrings block per module, each module once, packages showing only their
    docstring (their re-exported names are documented in the module that defines them)."""
    title, intro, names = API_PAGES[page]
    lines = [f"# {title}", "", intro, ""]
    seen: set[str] = set()
    for name in names:
        for module in _modules(name):
            if module in seen:
                continue
            seen.add(module)
            is_package = SRC.parent.joinpath(*module.split(".")).is_dir()
            lines.append(f"::: {module}")
            if is_package:
                lines += ["    options:", "      members: false"]
            lines.append("")
    return "\n".join(lines)


def on_files(files: Files, config: Any) -> Files:
    """Add the generated scenario catalogue and API pages to the site's files."""
    files.append(File.generated(config, CATALOG, content=catalog_markdown()))
    for page in API_PAGES:
        files.append(File.generated(config, f"api/{page}.md", content=api_markdown(page)))
    return files
