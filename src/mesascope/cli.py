"""The `mesascope` command line: a thin front end over `mesascope.experiments`.

Every user error (unknown scenario, bad option, missing run folder) is one line on stderr and exit
status 2; a traceback is never the interface.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mesascope.types import MesascopeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure inner and outer alignment on trained systems, exactly and reproducibly.",
)
console = Console()
err_console = Console(stderr=True)


def _parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise MesascopeError(f"{what} {item!r} is not NAME=VALUE (e.g. {what} total_timesteps=200000)")
        name, raw = item.split("=", 1)
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


@app.command("list")
def list_scenarios() -> None:
    """Show the registered scenarios."""
    from mesascope.scenarios import get_scenario, registered_ids

    table = Table(title="mesascope scenarios", show_lines=False)
    table.add_column("id", style="bold cyan", no_wrap=True)
    table.add_column("candidate goals")
    table.add_column("expected finding")
    for sid in registered_ids():
        sc = get_scenario(sid)
        table.add_row(sid, ", ".join(g.name for g in sc.candidate_goals), sc.expected_finding)
    from mesascope.scenarios.study import get_study, study_ids

    for sid in study_ids():  # non-gridworld scenarios: the column names their base optimizer instead
        st = get_study(sid)
        table.add_row(sid, f"(study: {st.optimizer})", st.expected_finding)
    console.print(table)


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description:<8}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


@app.command("run")
def run_command(
    scenario: str = typer.Argument(..., help="Scenario id (see `mesascope list`)."),
    seeds: int = typer.Option(4, "--seeds", help="Systems to train (seeds 0..N-1), in one vmapped program."),
    preset: str = typer.Option("fast", "--preset", help="Training preset: fast or full."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/<scenario>-<preset>-<N>seeds)."),
    audit_levels: int = typer.Option(256, "--audit-levels", help="Levels per split in the exact audit."),
    set_: list[str] = typer.Option([], "--set", help="Override a training setting, e.g. --set total_timesteps=200000."),
    param: list[str] = typer.Option([], "--param", help="Scenario parameter, e.g. --param region=3."),
    tau: float = typer.Option(0.9, "--tau", help="J >= tau 'performs well' (SPEC.md section 2)."),
    eps: float = typer.Option(0.2, "--eps", help="EPIC <= eps: two objectives 'agree'."),
    delta: float = typer.Option(0.05, "--delta", help="Training-optimality gap <= delta counts as optimal."),
    tau_acc: float = typer.Option(0.5, "--tau-acc", help="J >= tau_acc is 'acceptable' (not catastrophic)."),
) -> None:
    """Train systems on SCENARIO with a base optimizer, audit each one exactly, print a summary."""
    from mesascope.experiments.run import AuditConfig, run
    from mesascope.optimizers.ppo import PRESETS
    from mesascope.scenarios import get_scenario

    from mesascope.scenarios.study import is_study

    if is_study(scenario):
        _run_study_command(scenario, seeds, preset, out, set_, param)
        return
    get_scenario(scenario)  # fail fast on a bad id, before anything is written
    if preset not in PRESETS:
        raise MesascopeError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if audit_levels < 1:
        raise MesascopeError(f"--audit-levels must be at least 1; got {audit_levels}")
    out = out or Path("runs") / f"{scenario}-{preset}-{seeds}seeds"
    with _progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=frac)

        result = run(
            scenario,
            seeds=seeds,
            preset=preset,
            out=out,
            audit=AuditConfig(n_train=audit_levels, n_deploy=audit_levels),
            overrides=_parse_assignments(set_, "--set"),
            scenario_params=_parse_assignments(param, "--param"),
            progress=progress,
            thresholds=_thresholds(tau, eps, delta, tau_acc),
        )
    print_summary(result)
    console.print(f"[dim]audit written to[/] {out / 'audit.json'}")


def _run_study_command(scenario: str, seeds: int, preset: str, out: Path | None, set_: list[str], param: list[str]) -> None:
    from mesascope.experiments.study import run_study

    out = out or Path("runs") / f"{scenario}-{preset}-{seeds}seeds"
    with _progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=frac)

        result = run_study(
            scenario,
            seeds=seeds,
            preset=preset,
            out=out,
            overrides=_parse_assignments(set_, "--set"),
            params=_parse_assignments(param, "--param"),
            progress=progress,
        )
    console.print(study_table(result))
    for name, table in result["findings"].get("tables", {}).items():
        console.print(_rows_table(name, table))
    console.print(f"[dim]audit written to[/] {out / 'audit.json'}")


def study_table(result: dict[str, Any]) -> Table:
    """The terminal summary of a study: each check of its expected finding, measured."""
    verdict = "[green]finding reproduced[/]" if result["finding_holds"] else "[red]finding NOT reproduced[/]"
    table = Table(title=f"{result['scenario']} · preset {result['preset']} · {verdict}")
    table.add_column("check", style="bold")
    table.add_column("measured", justify="right")
    table.add_column("expected")
    table.add_column("holds")
    for c in result["findings"].get("checks", []):
        m = c["measured"]
        text = f"{m:.4g}" if isinstance(m, float) else str(m)
        table.add_row(c["name"], text, c["expected"], "[green]yes[/]" if c["holds"] else "[red]no[/]")
    return table


def _rows_table(name: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=name)
    for col in rows[0] if rows else []:
        table.add_column(str(col))
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    return table


@app.command("audit")
def audit_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `mesascope run`."),
    audit_levels: int = typer.Option(256, "--audit-levels", help="Levels per split in the exact audit."),
    tau: float = typer.Option(0.9, "--tau", help="J >= tau 'performs well' (SPEC.md section 2)."),
    eps: float = typer.Option(0.2, "--eps", help="EPIC <= eps: two objectives 'agree'."),
    delta: float = typer.Option(0.05, "--delta", help="Training-optimality gap <= delta counts as optimal."),
    tau_acc: float = typer.Option(0.5, "--tau-acc", help="J >= tau_acc is 'acceptable' (not catastrophic)."),
) -> None:
    """Re-audit the trained systems of RUN_DIR (no retraining) and rewrite its audit.json."""
    from mesascope.experiments.run import AuditConfig, audit_run

    thresholds = _thresholds(tau, eps, delta, tau_acc)
    result = audit_run(run_dir, AuditConfig(n_train=audit_levels, n_deploy=audit_levels), thresholds=thresholds)
    print_summary(result)


def _thresholds(tau: float, eps: float, delta: float, tau_acc: float) -> Any:
    from mesascope.properties import Thresholds

    return Thresholds(tau=tau, eps=eps, delta=delta, tau_acc=tau_acc)


@app.command("graph")
def graph_command(run_dir: Path = typer.Argument(..., help="An audited run folder.")) -> None:
    """Draw the and-or graphs of every system of RUN_DIR into RUN_DIR/graphs/ (SVG; DOT if Graphviz is missing)."""
    from mesascope.verdicts.draw import write_run_graphs

    for path in write_run_graphs(run_dir):
        console.print(f"wrote {run_dir / path}")


@app.command("explain")
def explain_command(prop: str = typer.Argument(..., metavar="PROPERTY", help="e.g. outer_alignment")) -> None:
    """Print every school's definition of PROPERTY, with the seed each comes from."""
    from mesascope.verdicts.table import explain_table

    console.print(explain_table(prop))


def summary_table(result: dict[str, Any]) -> Table:
    """The terminal summary of an audit: one row per system plus the uniform-random baseline."""
    goals = result["candidate_goals"]
    table = Table(title=f"{result['scenario']} · preset {result['preset']} · exact audit", show_lines=False)
    table.add_column("system", style="bold")
    for split in ("train", "deploy"):
        table.add_column(f"{split}\nJ_base", justify="right")
        table.add_column(f"{split}\nJ_intended", justify="right")
    for g in goals:
        table.add_column(f"deploy\n{g} 1st", justify="right")
    table.caption = (
        "J: normalised exact score (1 optimal, 0 uniform-random). "
        "'goal 1st': probability the goal is reached before the other candidate goals."
    )

    def fmt(x: float, good: float | None = None) -> str:
        text = f"{x:.3f}"
        if good is None:
            return text
        return f"[green]{text}[/]" if x >= good else f"[red]{text}[/]"

    rows = [(f"seed {s['seed']}", s) for s in result["systems"]]
    rows.append(("uniform", result["baselines"]["uniform"]))
    for name, entry in rows:
        sc = entry["scores"]
        cells = []
        for split in ("train", "deploy"):
            cells += [fmt(sc[split]["base"], 0.9), fmt(sc[split]["intended"], 0.9)]
        cells += [fmt(entry["first_reached"]["deploy"][g]) for g in goals]
        table.add_row(name, *cells)
    return table


def print_summary(result: dict[str, Any]) -> None:
    console.print(summary_table(result))
    from mesascope.verdicts.table import verdict_table

    verdicts = verdict_table(result)
    if verdicts is not None:
        console.print(verdicts)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mesascope` console script; returns the exit status."""
    try:
        result = app(args=argv, standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except typer.TyperException as err:  # usage errors: unknown option, bad value, missing argument
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        if not message:  # `mesascope` alone: the help text was already printed
            return 0
        ctx = getattr(err, "ctx", None)
        hint = f" (see `mesascope {ctx.command.name} --help`)" if ctx is not None and ctx.command.name else ""
        err_console.print(f"error: {message}{hint}", highlight=False, soft_wrap=True)
        return getattr(err, "exit_code", 2)
    except MesascopeError as err:
        err_console.print(f"error: {err}", highlight=False, soft_wrap=True)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
