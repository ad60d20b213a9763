"""`mesascope reproduce`: run every scenario's stated configuration and check its expected finding.

Each scenario declares its finding as prose and as a check over its audit (`mesascope.scenarios.Finding`),
with the configuration that reproduces it (`fast`, and for some a `full` one). `reproduce` runs that
configuration through the one run path (`mesascope.experiments.run.run`), into `OUT/<scenario id>`,
applies the check, and writes the table of what was found:

* `OUT/findings.json`: one record per scenario (configuration, every check, reproduced or not, seconds);
* `OUT/findings.md`: the same as a Markdown table (the docs keep a copy);
* the result store: every run with its finding's checks (`finding_checks`, `runs.finding_holds`).

A scenario whose run fails is one row with its error; the others still run.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax

from mesascope.experiments.audit import AuditConfig
from mesascope.experiments.catalog import reproduce_command
from mesascope.experiments.run import RunEvents, run
from mesascope.properties import Thresholds
from mesascope.scenarios import RunSpec, get_scenario, scenario_ids
from mesascope.types import MesascopeError, error_line

__all__ = ["Reproduction", "configurations", "findings_markdown", "reproduce", "reproduce_one", "write_findings"]


@dataclass(frozen=True)
class Reproduction:
    """One scenario's finding, reproduced or not.

    Attributes:
        scenario: The id.
        params: The parameter values of this configuration (empty for the scenario's defaults).
        kind: "gridworld" or "study".
        configuration: "fast" or "full".
        command: The equivalent `mesascope run` command line.
        expected: The expected finding (prose).
        checks: Each check as audit.json `finding.checks` holds it (`name`, `measured`, `expected`, `holds`).
        reproduced: Whether every check held (False when the run failed).
        seconds: Wall time of the run, audit included.
        run_dir: Where the run folder is.
        error: The error that stopped the run, if one did.
        skipped: Why the finding was not run in this configuration (a `full`-only finding under `--fast`).
    """

    scenario: str
    params: dict[str, Any]
    kind: str
    configuration: str
    command: str
    expected: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    reproduced: bool = False
    seconds: float = 0.0
    run_dir: str = ""
    error: str | None = None
    skipped: str | None = None

    @property
    def failed(self) -> bool:
        """Run, and not reproduced (a skipped finding is not a failure)."""
        return self.skipped is None and not self.reproduced


def configurations(scenario_id: str, *, full: bool = False) -> list[RunSpec | None]:
    """The configurations `reproduce` runs for one scenario: its `fast` (or `full`) one, then (fast only)
    each of `Finding.also`. A None entry is a finding without that configuration (reported as skipped).

    Raises:
        MesascopeError: if the scenario states no finding, or has no `full` configuration when asked.
    """
    finding = get_scenario(scenario_id).finding
    if finding is None:
        raise MesascopeError(f"{scenario_id} states no checkable finding")
    if full:
        if finding.full is None:
            raise MesascopeError(f"{scenario_id} has no full reproduction configuration; use --fast")
        return [finding.full]
    return [finding.fast, *finding.also]


def _folder(scenario_id: str, params: dict[str, Any]) -> str:
    return scenario_id + "".join(f"-{k}={v}" for k, v in params.items()).replace("/", "_").replace(" ", "")


def reproduce_one(
    scenario_id: str,
    out: Path,
    *,
    full: bool = False,
    spec: RunSpec | None = None,
    progress: Callable[[str, float], None] = lambda stage, frac: None,
    events: RunEvents | None = None,
) -> Reproduction:
    """Run one reproduction configuration into `out / <scenario id>[-param=value...]` and check its finding.

    `spec` defaults to the scenario's first configuration (`configurations`). The run folder belongs to
    reproduce: an earlier reproduction there is replaced.

    Raises:
        MesascopeError: if the scenario is unknown, states no finding, or has no `full` configuration
            when `full` is asked for.
    """
    sc = get_scenario(scenario_id)
    spec = spec if spec is not None else configurations(scenario_id, full=full)[0]
    config = "full" if full else "fast"
    if spec is None:
        return Reproduction(scenario_id, {}, sc.kind, config, "", sc.expected_finding,
                            skipped="needs the full preset: `mesascope reproduce --full " + scenario_id + "`")
    params = dict(spec.params)
    if params:
        sc = get_scenario(scenario_id, **params)
    run_dir = out / _folder(scenario_id, params)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    base = dict(scenario=scenario_id, params=params, kind=sc.kind, configuration=config,
                command=reproduce_command(scenario_id, spec, sc.kind), expected=sc.expected_finding, run_dir=str(run_dir))
    started = time.perf_counter()
    try:
        result = run(
            scenario_id, seeds=spec.seeds, preset=spec.preset, out=run_dir,
            audit=AuditConfig(n_train=spec.audit_levels, n_deploy=spec.audit_levels),
            overrides=dict(spec.settings), scenario_params=dict(spec.params), progress=progress,
            thresholds=Thresholds(), events=events,
        )
    except Exception as err:  # noqa: BLE001 - one scenario's failure is one row, not the end of the table
        return Reproduction(**base, seconds=round(time.perf_counter() - started, 1), error=error_line(err))
    finding = result.get("finding", {})
    return Reproduction(**base, checks=list(finding.get("checks", [])), reproduced=bool(finding.get("holds")),
                        seconds=round(time.perf_counter() - started, 1))


def reproduce(
    ids: Sequence[str] = (),
    out: Path = Path("runs/reproduce"),
    *,
    full: bool = False,
    progress_for: Callable[[str], Callable[[str, float], None]] | None = None,
    events: RunEvents | None = None,
    on_result: Callable[[Reproduction], None] = lambda r: None,
) -> list[Reproduction]:
    """Reproduce the findings of `ids` (default: every registered scenario) and write the findings table.

    Raises:
        MesascopeError: on an unknown id, before anything runs.
    """
    ids = list(ids) or [sid for sid in scenario_ids() if get_scenario(sid).finding is not None]
    for sid in ids:
        get_scenario(sid)  # every id checked before the first run
    out.mkdir(parents=True, exist_ok=True)
    plan = [(sid, spec) for sid in ids for spec in configurations(sid, full=full)]
    rows = []
    for sid, spec in plan:
        row = reproduce_one(sid, out, full=full, spec=spec, progress=progress_for(sid) if progress_for else lambda s, f: None,
                            events=events)
        rows.append(row)
        on_result(row)
        write_findings(out, rows)  # after every configuration: a later failure keeps what was found
        # The next configuration compiles its own programs: drop this one's, so that one process running
        # every configuration does not pile up loaded executables (each holds memory mappings, and the
        # kernel caps a process's mappings, `vm.max_map_count`).
        jax.clear_caches()
    return rows


def _measured(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def findings_markdown(rows: Sequence[Reproduction]) -> str:
    """The findings table in Markdown: scenario, expected finding, measured checks, reproduced, time."""
    lines = [
        "| scenario | expected finding | measured | reproduced | time |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        expected = r.expected.replace("|", "\\|").replace("\n", " ")
        if r.skipped:
            measured = f"skipped: {r.skipped}"
        elif r.error:
            measured = f"run failed: {r.error}"
        else:
            measured = "<br>".join(
                f"{'✓' if c['holds'] else '✗'} {c['name']}: {_measured(c['measured'])} ({c['expected']})" for c in r.checks
            ).replace("|", "\\|")
        verdict = "skipped" if r.skipped else ("yes" if r.reproduced else "**no**")
        name = f"`{r.scenario}`" + "".join(f" {k}={v}" for k, v in r.params.items())
        lines.append(f"| {name} | {expected} | {measured} | {verdict} | {r.seconds:.0f} s |")
    held = sum(r.reproduced for r in rows)
    skipped = sum(r.skipped is not None for r in rows)
    lines += ["", f"{held} of {len(rows) - skipped} findings reproduced" + (f" ({skipped} skipped)." if skipped else ".")]
    return "\n".join(lines) + "\n"


def write_findings(out: Path, rows: Sequence[Reproduction]) -> None:
    """`OUT/findings.json` and `OUT/findings.md`."""
    (out / "findings.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    (out / "findings.md").write_text(findings_markdown(rows))
