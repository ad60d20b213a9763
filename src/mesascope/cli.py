"""The `mesascope` command line: a thin front end over `mesascope.experiments`.

Every user error (unknown scenario, bad option, missing run folder) is one line on stderr and exit
status 2; a traceback is never the interface.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mesascope.types import MesascopeError, error_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure inner and outer alignment on trained systems, exactly and reproducibly.",
)
console = Console()
err_console = Console(stderr=True)


def with_thresholds(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command one option per threshold (`THRESHOLD_FIELDS`) and pass it `thresholds=Thresholds(...)`.

    Every command that decides a verdict (run, audit, sweep) takes the same options from the one
    declaration in `mesascope.properties.thresholds`; a value out of range is one `error:` line.
    """
    from mesascope.properties import THRESHOLD_FIELDS, Thresholds

    defaults = Thresholds()
    sig = inspect.signature(command, eval_str=True)
    extra = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=f.kind,
                          default=typer.Option(getattr(defaults, f.name), f.option, help=f.help))
        for f in THRESHOLD_FIELDS
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {f.name: kwargs.pop(f.name) for f in THRESHOLD_FIELDS}
        return command(*args, thresholds=Thresholds(**values), **kwargs)

    kept = [p for p in sig.parameters.values() if p.name != "thresholds"]
    wrapper.__signature__ = sig.replace(parameters=kept + extra)  # type: ignore[attr-defined]
    return wrapper


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
    """One line per registered scenario: id, kind, candidate goals (or base optimizer), summary."""
    from mesascope.scenarios import get_scenario, scenario_ids

    ids = scenario_ids()
    width = max(len(sid) for sid in ids)
    rows = []
    for sid in ids:
        sc = get_scenario(sid)
        goals = ", ".join(g.name for g in sc.candidate_goals) if sc.kind == "gridworld" else sc.optimizer.split(" ")[0]
        rows.append((sid, sc.kind, goals, sc.summary))
    goal_width = max(len(r[2]) for r in rows)
    console.print(f"[bold]{'id':<{width}}  {'kind':<9}  {'goals / optimizer':<{goal_width}}  summary[/]", highlight=False)
    for sid, kind, goals, summary in rows:
        console.print(f"[cyan]{sid:<{width}}[/]  {kind:<9}  {goals:<{goal_width}}  {summary}", highlight=False, soft_wrap=True)
    console.print(f"[dim]{len(ids)} scenarios; `mesascope show ID` prints one in full[/]")


@app.command("show")
def show_command(scenario: str = typer.Argument(..., help="Scenario id (see `mesascope list`).")) -> None:
    """Print one scenario in full: description, parameters, training settings, expected finding, how to reproduce it."""
    from mesascope.experiments.catalog import describe_scenario

    for line in describe_scenario(scenario):
        console.print(line, soft_wrap=True, highlight=False)


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


@contextlib.contextmanager
def _stage_progress() -> Iterator[Callable[[str, float], None]]:
    """A progress bar per stage; yields the `progress(stage, fraction_done)` callback runs take."""
    with _progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=frac)

        yield progress


@app.command("run")
@with_thresholds
def run_command(
    scenario: str = typer.Argument(..., help="Scenario id (see `mesascope list`)."),
    seeds: int = typer.Option(4, "--seeds", help="Systems to train (seeds 0..N-1), in one vmapped program."),
    preset: str = typer.Option("fast", "--preset", help="Training preset: fast or full."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/<scenario>-<preset>-<N>seeds)."),
    audit_levels: int = typer.Option(256, "--audit-levels", help="Levels per split in the exact audit."),
    set_: list[str] = typer.Option([], "--set", help="Override a training setting, e.g. --set total_timesteps=200000."),
    param: list[str] = typer.Option([], "--param", help="Scenario parameter, e.g. --param region=3."),
    mlflow: bool = typer.Option(False, "--mlflow", help="Also log the run to MLflow (needs the optional extra `mlflow`)."),
    mlflow_uri: str = typer.Option(None, "--mlflow-uri", help="MLflow tracking URI or local folder (default: MLflow's own)."),
    db: Path = typer.Option(None, "--db", help="Result store (default: $MESASCOPE_DB, else runs.duckdb beside the run folder)."),
    profile: bool = typer.Option(False, "--profile", help="Time every stage (and what JAX compiled) into audit.json `timings` and print it."),
    thresholds: Any = None,
) -> None:
    """Train systems on SCENARIO with its base optimizer, audit and judge each one, print a summary."""
    from mesascope.experiments.run import AuditConfig, plan_run, run
    from mesascope.graphs.render import reusing_drawings

    if mlflow:
        from mesascope.report.tracking import require_mlflow

        require_mlflow()  # fail before training, not after
    if audit_levels < 1:
        raise MesascopeError(f"--audit-levels must be at least 1; got {audit_levels}")
    overrides, params = _parse_assignments(set_, "--set"), _parse_assignments(param, "--param")
    # Everything is checked before any folder or store row exists.
    plan_run(scenario, seeds=seeds, preset=preset, overrides=overrides, scenario_params=params)
    out = out or Path("runs") / f"{scenario}-{preset}-{seeds}seeds"
    if (out / "run.json").exists():
        raise MesascopeError(f"{out} already holds a run; choose another --out folder or delete it")
    store = _run_store(db, out)  # a foreign or corrupt store file is refused before training
    timer = _timer(profile)
    with reusing_drawings():  # the report draws the graphs the audit has just drawn
        with _stage_progress() as progress:
            result = run(
                scenario,
                seeds=seeds,
                preset=preset,
                out=out,
                audit=AuditConfig(n_train=audit_levels, n_deploy=audit_levels),
                overrides=overrides,
                scenario_params=params,
                progress=progress,
                thresholds=thresholds,
                events=_store_events(store),
                timer=timer,
            )
        print_result(result)
        console.print(f"[dim]audit written to[/] {out / 'audit.json'}")
        with timer.stage("report"):
            _after_run(out, mlflow, mlflow_uri)
    _print_profile(timer)


def print_result(result: dict[str, Any]) -> None:
    """The terminal view of any audit: its summary (gridworld) or tables (study), verdicts, the finding's checks."""
    if result.get("kind") == "study":
        for name, rows in result.get("findings", {}).get("tables", {}).items():
            console.print(_rows_table(name, rows))
        from mesascope.verdicts.table import verdict_table

        verdicts = verdict_table(result)
        if verdicts is not None:
            console.print(verdicts)
    else:
        print_summary(result)
    if result.get("finding", {}).get("checks"):
        console.print(finding_table(result))


@app.command("reproduce")
def reproduce_command(
    ids: list[str] = typer.Argument(None, metavar="[IDS]...", help="Scenario ids (default: every scenario)."),
    full: bool = typer.Option(False, "--full/--fast", help="The longer configuration where a finding has one (default: fast)."),
    out: Path = typer.Option(Path("runs/reproduce"), "--out", help="Folder for the runs, findings.md and findings.json."),
    db: Path = typer.Option(None, "--db", help="Result store (default: $MESASCOPE_DB, else runs.duckdb beside OUT)."),
) -> None:
    """Run each scenario's stated configuration and check its expected finding; exit 1 if one is not reproduced."""
    from mesascope.experiments.reproduce import reproduce
    from mesascope.experiments.store import Store, resolve_db

    store = Store(resolve_db(db, out))
    store.check()
    table = Table(title=f"mesascope reproduce ({'full' if full else 'fast'})", show_lines=True)
    for col in ("scenario", "measured", "reproduced", "time"):
        table.add_column(col, justify="right" if col == "time" else "left")

    def on_result(row: Any) -> None:
        name = row.scenario + "".join(f" {k}={v}" for k, v in row.params.items())
        if row.skipped:
            table.add_row(name, f"[yellow]skipped:[/] {row.skipped}", "[yellow]skipped[/]", "-")
            console.print(f"{name}: skipped ({row.skipped})", highlight=False)
            return
        if row.error:
            measured = f"[red]run failed:[/] {row.error}"
        else:
            measured = "\n".join(f"{'[green]✓[/]' if c['holds'] else '[red]✗[/]'} {c['name']}: {_measured(c['measured'])}"
                                 for c in row.checks)
        table.add_row(name, measured, "[green]yes[/]" if row.reproduced else "[red]no[/]", f"{row.seconds:.0f} s")
        console.print(f"{name}: {'reproduced' if row.reproduced else 'NOT reproduced'} ({row.seconds:.0f} s)", highlight=False)

    with _stage_progress() as progress:
        rows = reproduce(ids or (), out, full=full, progress_for=lambda sid: progress, events=_store_events(store),
                         on_result=on_result)
    console.print(table)
    held, failed = sum(r.reproduced for r in rows), sum(r.failed for r in rows)
    skipped = len(rows) - held - failed
    console.print(f"{held} of {held + failed} findings reproduced" + (f", {skipped} skipped" if skipped else "")
                  + f"; table written to {out / 'findings.md'} and findings.json")
    if failed:
        raise typer.Exit(1)


def _measured(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _write_report(run_dir: Path) -> None:
    """Write RUN_DIR/report.html; a failure is a warning (the audit is already safe on disk)."""
    from mesascope.report import try_write_report

    path, error = try_write_report(run_dir)
    if path is not None:
        console.print(f"[dim]report written to[/] {path}")
    else:
        err_console.print(
            f"warning: the HTML report could not be written ({error}); audit.json is intact; "
            f"retry with `mesascope report {run_dir}`",
            highlight=False,
            soft_wrap=True,
        )


def _after_run(run_dir: Path, mlflow: bool = False, mlflow_uri: str | None = None) -> None:
    """The steps after a finished audit: the HTML report, then (if asked) MLflow; neither can lose the run."""
    _write_report(run_dir)
    if not mlflow:
        return
    from mesascope.report.tracking import log_run_to_mlflow

    try:
        run_id = log_run_to_mlflow(run_dir, mlflow_uri)
    except Exception as err:  # noqa: BLE001 - the run is finished and on disk; logging is extra
        err_console.print(
            f"warning: logging to MLflow failed ({error_line(err)}); the run folder {run_dir} is intact",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(f"[dim]logged to MLflow as run[/] {run_id}")


def finding_table(result: dict[str, Any]) -> Table:
    """Each check of the scenario's expected finding, measured on this audit, and whether it held."""
    finding = result.get("finding", {})
    verdict = "[green]finding reproduced[/]" if finding.get("holds") else "[red]finding NOT reproduced[/]"
    table = Table(title=f"{result['scenario']} · preset {result['preset']} · {verdict}")
    table.add_column("check", style="bold")
    table.add_column("measured", justify="right")
    table.add_column("expected")
    table.add_column("holds")
    for c in finding.get("checks", []):
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
@with_thresholds
def audit_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `mesascope run`."),
    audit_levels: int = typer.Option(256, "--audit-levels", help="Levels per split in the exact audit."),
    db: Path = typer.Option(None, "--db", help="Result store to update (default: $MESASCOPE_DB, else runs.duckdb beside RUN_DIR)."),
    profile: bool = typer.Option(False, "--profile", help="Time every stage (and what JAX compiled) into audit.json `timings` and print it."),
    thresholds: Any = None,
) -> None:
    """Audit RUN_DIR again under the given thresholds (no retraining) and rewrite its audit.json.

    A gridworld run is re-audited from its saved systems; a study's stored measurements are judged again.
    """
    from mesascope.experiments.run import AuditConfig, rejudge
    from mesascope.graphs.render import reusing_drawings

    if audit_levels < 1:
        raise MesascopeError(f"--audit-levels must be at least 1; got {audit_levels}")
    timer = _timer(profile)
    with reusing_drawings():  # the report draws the graphs the audit has just drawn
        with _stage_progress() as progress:
            result = rejudge(run_dir, AuditConfig(n_train=audit_levels, n_deploy=audit_levels), progress=progress,
                             thresholds=thresholds, timer=timer)
        print_result(result)
        _store_events(_run_store(db, run_dir))("ingest", run_dir, result)
        with timer.stage("report"):
            _write_report(run_dir)
    _print_profile(timer)


@app.command("audit-policy")
@with_thresholds
def audit_policy_command(
    scenario: str = typer.Argument(..., help="Gridworld scenario id (see `mesascope list`)."),
    policy: str = typer.Option(..., "--policy", help="module:function, path/to/file.py:function, a stable-baselines3 .zip or an .onnx file."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/<scenario>-outside-<name>)."),
    audit_levels: int = typer.Option(256, "--audit-levels", help="Levels per split in the exact audit."),
    param: list[str] = typer.Option([], "--param", help="Scenario parameter, e.g. --param grid_size=5 (as the policy was trained with)."),
    from_logits: bool = typer.Option(False, "--from-logits", help="The policy returns logits; apply a softmax."),
    db: Path = typer.Option(None, "--db", help="Result store (default: $MESASCOPE_DB, else runs.duckdb beside the run folder)."),
    profile: bool = typer.Option(False, "--profile", help="Time every stage (and what JAX compiled) into audit.json `timings` and print it."),
    thresholds: Any = None,
) -> None:
    """Audit a policy trained elsewhere on SCENARIO, exactly, and write a normal run folder.

    The policy reads the observations of the scenario's Gymnasium environment (`[B, *obs_shape]`) and
    returns action probabilities `[B, A]`. It is checked on every audited state before anything is written.
    """
    from mesascope.experiments.outside import audit_policy, default_out, plan_policy_audit
    from mesascope.experiments.run import AuditConfig
    from mesascope.graphs.render import reusing_drawings

    if audit_levels < 1:
        raise MesascopeError(f"--audit-levels must be at least 1; got {audit_levels}")
    audit = AuditConfig(n_train=audit_levels, n_deploy=audit_levels)
    out = out or default_out(scenario, policy)
    if (out / "run.json").exists():
        raise MesascopeError(f"{out} already holds a run; choose another --out folder or delete it")
    # Everything is checked (the policy evaluated on every audited state) before any folder or store row exists.
    plan = plan_policy_audit(scenario, policy, scenario_params=_parse_assignments(param, "--param"),
                             from_logits=from_logits, audit=audit)
    store = _run_store(db, out)
    timer = _timer(profile)
    with reusing_drawings():  # the report draws the graphs the audit has just drawn
        with _stage_progress() as progress:
            result = audit_policy(plan, out, thresholds=thresholds, progress=progress, events=_store_events(store), timer=timer)
        print_result(result)
        console.print(f"[dim]audit written to[/] {out / 'audit.json'}")
        with timer.stage("report"):
            _after_run(out)
    _print_profile(timer)


def _timer(profile: bool) -> Any:
    from mesascope.experiments.profiling import NULL_TIMER, StageTimer

    return StageTimer() if profile else NULL_TIMER


def _print_profile(timer: Any) -> None:
    """The `--profile` table: wall seconds, compilations and compilation-cache hits per stage."""
    if not timer.enabled:
        return
    data = timer.as_dict()
    table = Table(title="profile (wall time per stage)")
    for col in ("stage", "seconds", "share", "compiled", "from cache", "compile s"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    total = data["total_seconds"] or 1.0
    for name, st in sorted(data["stages"].items(), key=lambda kv: -kv[1]["seconds"]):
        table.add_row(name, f"{st['seconds']:.2f}", f"{st['seconds'] / total:.0%}", str(st["compiled"]),
                      str(st["from_cache"]), f"{st['compile_seconds']:.2f}")
    table.add_row("total", f"{data['total_seconds']:.2f}", "100%", str(data["compiled"]), str(data["from_cache"]),
                  f"{data['compile_seconds']:.2f}", style="bold")
    table.caption = "compiled: programs XLA compiled; from cache: loaded from the persistent compilation cache instead."
    console.print(table)


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run folder (with audit.json) or a sweep folder (with curve.json)."),
    out: Path = typer.Option(None, "--out", help="Where to write the HTML (default: RUN_DIR/report.html)."),
) -> None:
    """Write one self-contained HTML report of RUN_DIR (plots, graphs, verdicts, pictures inline)."""
    from mesascope.report import write_run_report, write_sweep_report

    if not (run_dir / "audit.json").exists() and (run_dir / "curve.json").exists():
        path = write_sweep_report(run_dir, out)
    else:
        path = write_run_report(run_dir, out)
    console.print(f"[dim]report written to[/] {path}")


@app.command("graph")
def graph_command(run_dir: Path = typer.Argument(..., help="An audited run folder.")) -> None:
    """Draw the and-or graphs of every system of RUN_DIR into RUN_DIR/graphs/ (SVG; DOT if Graphviz is missing)."""
    from mesascope.verdicts.draw import write_run_graphs

    for path in write_run_graphs(run_dir):
        console.print(f"wrote {run_dir / path}")


@app.command("probe")
def probe_command(
    run_dir: Path = typer.Argument(..., help="A finished run trained with mesascope's PPO."),
    levels: int = typer.Option(64, "--levels", help="Audited levels per split whose every state is probed."),
    folds: int = typer.Option(4, "--folds", help="Folds over levels for the cross-validation."),
    ridge: float = typer.Option(1.0, "--ridge", help="Ridge penalty on standardised activations."),
) -> None:
    """Linear probes on every layer of every seed's network: which layers encode the objects' cells and
    each candidate goal's next optimal action, on train and deploy levels (RUN_DIR/inside/probes.json)."""
    from mesascope.experiments.inside import check_probe_run, probe_run
    from mesascope.report.inside_tables import probes_table

    check_probe_run(run_dir, n_levels=levels, folds=folds, ridge=ridge)  # before any progress bar
    with _stage_progress() as progress:
        result = probe_run(run_dir, n_levels=levels, folds=folds, ridge=ridge, progress=progress)
    table = Table(title=f"linear probes · held-out accuracy, mean over seeds (shuffled targets) · {levels} levels per split",
                  show_lines=True)
    for name in ("split", "target", *result["layers"], "majority"):
        table.add_column(name)
    for split, target, cells in probes_table(result):
        table.add_row(split, target, *(cells[layer] for layer in (*result["layers"], "majority")))
    console.print(table)
    console.print(f"[dim]written to[/] {run_dir / 'inside' / 'probes.json'}")


@app.command("steer")
def steer_command(
    run_dir: Path = typer.Argument(..., help="A finished run trained with mesascope's PPO."),
    layer: str = typer.Option(..., "--layer", help="The layer edited: input, conv1..., dense1..., logits."),
    kind: str = typer.Option(..., "--object", help="The object whose goal vector is added, e.g. cheese."),
    coef: float = typer.Option(-1.0, "--coef", help="The vector's coefficient (-1 subtracts the object's mean effect)."),
    levels: int = typer.Option(256, "--levels", help="The audit's deploy levels the effect is measured on, exactly."),
    vector_levels: int = typer.Option(64, "--vector-levels", help="Other deploy levels the vector is built on."),
    square: str = typer.Option(None, "--square", help="R,C: retarget to this grid square (the object's vector there)."),
) -> None:
    """Add COEF x a goal vector (activations with the object minus without, at LAYER) to every seed's
    network and measure the effect exactly on deploy levels (RUN_DIR/inside/steer-*.json)."""
    from mesascope.experiments.inside import check_network_run, steer_file, steer_run
    from mesascope.report.inside_tables import steer_table

    target = None
    if square is not None:
        parts = square.split(",")
        if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
            raise MesascopeError(f"--square takes ROW,COL (two integers, e.g. 1,5); got {square!r}")
        target = (int(parts[0]), int(parts[1]))
    check_network_run(run_dir)  # before any progress bar
    with _stage_progress() as progress:
        result = steer_run(run_dir, layer=layer, kind=kind, coef=coef, n_levels=levels, vector_levels=vector_levels,
                           square=target, progress=progress)
    cols, rows = steer_table(result)
    what = f"the {kind} vector" if target is None else f"the {kind}-at-({target[0]},{target[1]}) vector"
    table = Table(title=f"steering: {coef:g} x {what} at {layer} · unedited -> steered · {levels} deploy levels",
                  show_lines=True)
    for name in cols:
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"[dim]written to[/] {run_dir / 'inside' / steer_file(kind, layer, coef, target)}")


@app.command("adversarial")
@with_thresholds
def adversarial_command(
    run_dir: Path = typer.Argument(..., help="A finished, audited run trained with mesascope's PPO."),
    out: Path = typer.Option(None, "--out", help="Run folder of the fine-tuned systems (default: RUN_DIR-adversarial)."),
    levels: int = typer.Option(256, "--levels", help="Training levels each system's search edits (its fine-tuning pool)."),
    rounds: int = typer.Option(16, "--rounds", help="Rounds of edits in the search."),
    steps: int = typer.Option(200_000, "--steps", help="Environment steps of PPO fine-tuning per system."),
    db: Path = typer.Option(None, "--db", help="Result store (default: $MESASCOPE_DB, else runs.duckdb beside the folder)."),
    thresholds: Any = None,
) -> None:
    """Search each system's highest-intended-regret levels with the scenario's edits, fine-tune it there with
    PPO on the base objective, and audit it again on the same held-out levels (OUT/adversarial.json)."""
    from mesascope.experiments.adversarial import AdversarialConfig, adversarial_run

    config = AdversarialConfig(levels=levels, rounds=rounds, steps=steps)
    config.validate()
    out = out if out is not None else run_dir.with_name(run_dir.name + "-adversarial")
    with _stage_progress() as progress:
        result = adversarial_run(run_dir, out, config, thresholds=thresholds, progress=progress)
    audit = json.loads((out / "audit.json").read_text())
    _store_events(_run_store(db, out))("ingest", out, audit)
    _write_report(out)
    table = Table(title=f"adversarial fine-tuning · {levels} levels x {rounds} rounds of edits, {steps} steps · before -> after",
                  show_lines=True)
    table.add_column("measure")
    for row in result["seeds"]:
        table.add_column(f"seed {row['seed']}")
    measures = [("intended regret, searched levels", lambda r, k: r["search"]["regret_" + ("start" if k == "before" else "end")]),
                ("J_int, its adversarial levels", lambda r, k: r[k]["j_intended_adversarial"]),
                ("J_int, held-out deploy", lambda r, k: r[k]["j_intended_deploy"]),
                ("J_base, train", lambda r, k: r[k]["j_base_train"]),
                ("behavioral objective", lambda r, k: r[k]["behavioral_objective"]),
                ("Hubinger", lambda r, k: r[k]["hubinger"])]
    for label, get in measures:
        table.add_row(label, *(f"{_num(get(r, 'before'))} -> {_num(get(r, 'after'))}" for r in result["seeds"]))
    console.print(f"[dim]written to[/] {out / 'adversarial.json'} [dim]and[/] {out / 'report.html'}")


def _num(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3f}"
    return "–" if x is None else str(x)


@app.command("explain")
def explain_command(prop: str = typer.Argument(..., metavar="PROPERTY", help="e.g. outer_alignment")) -> None:
    """Print every school's definition of PROPERTY, with the seed each comes from."""
    from mesascope.verdicts.table import explain_lines

    for line in explain_lines(prop):
        console.print(line, soft_wrap=True, highlight=False)


def summary_table(result: dict[str, Any]) -> Table:
    """The terminal summary of an audit: one row per system plus the uniform-random baseline.

    Every `J` is the mean over the levels informative for its objective (their count heads the column),
    with its 95% bootstrap interval over levels under it (SPEC.md section 2); the behavioral objective
    column names what explains each system's deploy behaviour (SPEC.md section 4), or "unexplained".
    """
    goals = result["candidate_goals"]
    counts = result.get("informative_levels", {})
    n_levels = result.get("audit", {})
    table = Table(title=f"{result['scenario']} · preset {result['preset']} · exact audit", show_lines=True)
    table.add_column("system", style="bold")
    for split in ("train", "deploy"):
        for obj, label in (("base", "J_base"), ("intended", "J_int")):
            n = counts.get(split, {}).get(obj)
            table.add_column(f"{split}\n{label}" + (f"\nn={n}" if n is not None else ""), justify="right", overflow="fold")
    table.add_column("deploy\nbehav.\nobjective", justify="right")
    for g in goals:
        table.add_column(f"deploy\n{g}\n1st", justify="right")
    table.caption = (
        f"J: normalised exact score (1 optimal, 0 uniform-random), mean over the n of {n_levels.get('n_deploy', '?')} "
        "audited levels informative for its objective, with its 95% bootstrap interval. behav. objective: what "
        "explains the deploy behaviour, its J and fit (nats/step). 'goal 1st': probability the goal is reached "
        "before the other candidate goals."
    )

    def fmt(x: float | None, interval: list[float] | None = None, good: float | None = None) -> str:
        if x is None:
            return "n/a"
        text = f"{x:.3f}"
        if good is not None:
            text = f"[green]{text}[/]" if x >= good else f"[red]{text}[/]"
        if interval:
            text += f"\n[dim]{interval[0]:.2f}..{interval[1]:.2f}[/]"
        return text

    def behavioral(entry: dict[str, Any]) -> str:
        choice = entry.get("behavioral", {}).get("deploy", {}).get("objective")
        if not choice:
            return "-"
        if not choice.get("name"):
            return f"[yellow]none[/]\n[dim]fit {choice.get('fit_quality') or 0:.3f}[/]"
        name = choice["name"].removeprefix("goal:")
        if name in entry["scores"]["deploy"]:
            j = entry["scores"]["deploy"][name]
        else:
            j = entry.get("behavioral", {}).get("deploy", {}).get("irl", {}).get("score", {}).get("mean")
        return f"{name}\n{fmt(j)}\n[dim]fit {choice['fit_quality']:.3f}[/]"

    rows = [(f"seed {s['seed']}", s) for s in result["systems"]]
    rows.append(("uniform", result["baselines"]["uniform"]))
    for name, entry in rows:
        sc, iv = entry["scores"], entry.get("intervals", {})
        cells = []
        for split in ("train", "deploy"):
            cells += [fmt(sc[split]["base"], iv.get(split, {}).get("base"), 0.9),
                      fmt(sc[split]["intended"], iv.get(split, {}).get("intended"), 0.9)]
        cells.append(behavioral(entry) if name != "uniform" else "")
        cells += [fmt(entry["first_reached"]["deploy"][g]) for g in goals]
        table.add_row(name, *cells)
    return table


def measures_table(result: dict[str, Any]) -> Table | None:
    """The scenario's own exact measures (audit.json `scenario_measures`): one row per system and baseline."""
    declared = result.get("scenario_measures") or {}
    if not declared:
        return None
    table = Table(title=f"{result['scenario']} · the scenario's own measures (mean over audited levels)", show_lines=True)
    table.add_column("policy", style="bold")
    for name in declared:
        for split in ("train", "deploy"):
            table.add_column(f"{split}\n{name}", justify="right", overflow="fold")

    def cells(entry: dict[str, Any] | None, levels: bool = False) -> list[str]:
        out = []
        for name, block in declared.items():
            source = block.get("value", {}) if levels else ((entry or {}).get("scenario_measures") or {}).get(name, {})
            if (block.get("of") == "levels") != levels:
                source = {}
            out += [f"{source[s]:.3f}" if isinstance(source.get(s), (int, float)) else "" for s in ("train", "deploy")]
        return out

    for entry in result["systems"]:
        table.add_row(f"seed {entry['seed']}", *cells(entry))
    table.add_row("uniform", *cells(result["baselines"]["uniform"]))
    if any(b.get("of") == "levels" for b in declared.values()):
        table.add_row("levels (system-independent)", *cells(None, levels=True))
    table.caption = "; ".join(f"{name}: {block['description']}" for name, block in declared.items())
    return table


def print_summary(result: dict[str, Any]) -> None:
    console.print(summary_table(result))
    measures = measures_table(result)
    if measures is not None:
        console.print(measures)
    from mesascope.measures.shards import audit_shard_lines

    for line in audit_shard_lines(result):
        console.print(line, highlight=False, soft_wrap=True)
    from mesascope.verdicts.table import verdict_table

    verdicts = verdict_table(result)
    if verdicts is not None:
        console.print(verdicts)


# -- the result store and sweeps (mesascope.experiments.store, mesascope.experiments.sweep) ---------------

DB_HELP = "Result store (default: $MESASCOPE_DB, else runs/runs.duckdb)."


def _warn(message: str) -> None:
    err_console.print(f"warning: {message}", highlight=False, soft_wrap=True)


def _run_store(db: Path | None, run_dir: Path) -> Any:
    """The store a run in `run_dir` records to, checked (a foreign or corrupt file is refused)."""
    from mesascope.experiments.store import Store, resolve_db

    store = Store(resolve_db(db, Path(run_dir).parent))
    store.check()
    return store


def _store_events(store: Any) -> Any:
    from mesascope.experiments.store import recorder

    return recorder(store, warn=_warn)


def _open_store(db: Path | None) -> Any:
    from mesascope.experiments.store import Store, resolve_db

    return Store(resolve_db(db, Path("runs")))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


@app.command("runs")
def runs_command(
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    scenario: str = typer.Option(None, "--scenario", help="Only runs of this scenario."),
) -> None:
    """List the runs in the result store, with their key scores (means over seeds)."""
    from mesascope.experiments.store import list_runs

    store = _open_store(db)
    cols, rows = list_runs(store)
    if scenario:
        rows = [r for r in rows if r[1] == scenario]
    table = Table(title=f"runs in {store.path}")
    heads = ["id", "scenario", "params", "preset", "seeds", "status", "started", "train\nJ_base", "deploy\nJ_intended", "proxy", "deploy\nproxy 1st"]
    for h in heads:
        table.add_column(h, justify="right" if "\n" in h or h == "seeds" else "left", no_wrap=h in ("id", "status"))
    for r in rows:
        d = dict(zip(cols, r))
        status = {"complete": "[green]complete[/]", "incomplete": "[red]incomplete[/]"}.get(d["status"], f"[yellow]{d['status']}[/]")
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in json.loads(d["scenario_params"] or "{}").items())
        table.add_row(
            d["run_id"], d["scenario"] or "-", params, d["preset"] or "-", _cell(d["seeds"]), status, _cell(d["started"]),
            _cell(d["train_j_base"]), _cell(d["deploy_j_intended"]), d["proxy_goal"] or "-", _cell(d["deploy_proxy_first"]),
        )
    table.caption = f"{len(rows)} run(s); `mesascope query \"SELECT ...\"` for anything else"
    console.print(table)


@app.command("query")
def query_command(
    sql: str = typer.Argument(..., help='A read-only SQL query, e.g. "SELECT * FROM runs".'),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    limit: int = typer.Option(200, "--limit", help="Rows to print at most."),
) -> None:
    """Run a read-only SQL query on the result store and print the result as a table."""
    store = _open_store(db)
    cols, rows = store.query(sql)
    table = Table(title=None)
    for c in cols:
        table.add_column(str(c))
    for r in rows[:limit]:
        table.add_row(*(_cell(v) for v in r))
    if len(rows) > limit:
        table.caption = f"first {limit} of {len(rows)} rows (--limit)"
    console.print(table)


@app.command("compare")
def compare_command(
    run_a: str = typer.Argument(..., help="A run id (or unique prefix, or run folder)."),
    run_b: str = typer.Argument(..., help="Another run id (or unique prefix, or run folder)."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Show what differs between two runs: settings, scores per objective and split, verdicts."""
    from mesascope.experiments.store import compare_runs

    diff = compare_runs(_open_store(db), run_a, run_b)
    a, b = diff["ids"]
    settings = Table(title=f"settings that differ ({len(diff['settings'])})")
    for col in ("field", a, b):
        settings.add_column(col)
    for name, va, vb in diff["settings"]:
        settings.add_row(name, _cell(va), _cell(vb))
    console.print(settings)
    for key, what in (("scores", "mean J over seeds"), ("first_reached", "mean first-reached probability")):
        table = Table(title=what)
        for col in ("split", "objective" if key == "scores" else "goal", a, b, "b - a"):
            table.add_column(col, justify="right" if col in (a, b, "b - a") else "left")
        for split, name, va, vb in diff[key]:
            delta = vb - va if va is not None and vb is not None else None
            shown = "-" if delta is None else (f"[bold]{delta:+.3f}[/]" if abs(delta) >= 0.05 else f"{delta:+.3f}")
            table.add_row(split, name, _cell(va), _cell(vb), shown)
        console.print(table)
    for key, what in (("verdicts", "verdicts that differ (labels over seeds)"), ("properties", "properties that differ (states over seeds)")):
        table = Table(title=f"{what} ({len(diff[key])})")
        for col in ("school" if key == "verdicts" else "property", a, b):
            table.add_column(col)
        for row in diff[key]:
            table.add_row(*row)
        console.print(table)


@app.command("ingest")
def ingest_command(
    folder: Path = typer.Argument(..., help="A run folder, a sweep folder, or a folder holding run folders."),
    db: Path = typer.Option(None, "--db", help="Result store (default: $MESASCOPE_DB, else runs.duckdb beside FOLDER's runs)."),
) -> None:
    """(Re)import existing run folders into the result store (idempotent)."""
    from mesascope.experiments.store import Store, ingest_tree, resolve_db

    folder = Path(folder)
    holder = folder.parent if (folder / "run.json").exists() or (folder / "sweep.json").exists() else folder
    store = Store(resolve_db(db, holder))
    found = ingest_tree(store, folder)
    done = sum(1 for _, _, st in found if st == "complete")
    console.print(f"ingested {len(found)} run(s) into {store.path} ({done} complete, {len(found) - done} incomplete)")


@app.command("sweep")
@with_thresholds
def sweep_command(
    scenario: str = typer.Argument(..., help="Scenario id (see `mesascope list`)."),
    param: list[str] = typer.Option([], "--param", help="Scenario parameter values, e.g. --param region=1,3."),
    set_: list[str] = typer.Option([], "--set", help="Training setting values, e.g. --set lr=0.001,0.0003."),
    seeds: int = typer.Option(4, "--seeds", help="Seeds per point."),
    preset: str = typer.Option("fast", "--preset", help="Training preset: fast or full."),
    out: Path = typer.Option(None, "--out", help="Sweep folder (default: runs/sweep-<scenario>-<names>)."),
    backend: str = typer.Option("local", "--backend", help="local (process pool) or ray."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray)."),
    workers: int = typer.Option(None, "--workers", help="Points run at once (default: half the CPUs)."),
    audit_levels: int = typer.Option(256, "--audit-levels", help="Levels per split in each point's exact audit."),
    goal: str = typer.Option(None, "--goal", help="Candidate goal whose first-reached fraction the curve shows (default: the proxy)."),
    db: Path = typer.Option(None, "--db", help="Result store (default: $MESASCOPE_DB, else runs.duckdb beside the sweep folder)."),
    profile: bool = typer.Option(False, "--profile", help="Time every stage of every point and print what each point compiled or took from the compilation cache."),
    thresholds: Any = None,
) -> None:
    """Run a grid of points (scenario parameters x training settings) and print the curve over seeds."""
    from mesascope.experiments.store import resolve_db
    from mesascope.experiments.sweep import parse_values, sweep

    params = dict(parse_values(p, "--param") for p in param)
    settings = dict(parse_values(p, "--set") for p in set_)
    names = "-".join([*params, *settings]) or "grid"
    out = out or Path("runs") / f"sweep-{scenario}-{names}"
    db_path = resolve_db(db, out.parent)
    with _progress_bar() as bar:
        tasks: list[Any] = []

        def on_point(row: dict[str, Any]) -> None:
            if not tasks:  # created on the first point, so a refused sweep prints only its error line
                n_points = 1
                for values in [*params.values(), *settings.values()]:
                    n_points *= len(values)
                tasks.append(bar.add_task("points", total=n_points))
            bar.advance(tasks[0])
            values = ", ".join(f"{k}={json.dumps(v)}" for k, v in {**row["params"], **row["settings"]}.items())
            bar.console.print(f"[dim]{row['dir']}[/] {values}: {row['status']} ({row.get('action', '')})", highlight=False)

        try:
            curve = sweep(
                scenario, params=params, settings=settings, seeds=seeds, preset=preset, out=out, backend=backend,
                address=address, workers=workers, audit_levels=audit_levels, goal=goal, db=db_path, on_point=on_point,
                thresholds=thresholds, profile=profile,
            )
        finally:
            _print_curve_if_any(out, profile)
    for w in curve.get("warnings", []):
        _warn(w)
    console.print(f"[dim]curve written to[/] {out / 'curve.json'} [dim]and[/] curve.csv")


def _print_curve_if_any(sweep_dir: Path, profile: bool = False) -> None:
    path = Path(sweep_dir) / "curve.json"
    if path.exists():
        curve = json.loads(path.read_text())
        console.print(curve_table(curve))
        if profile:
            console.print(sweep_profile_table(curve))
        _write_sweep_report(Path(sweep_dir))


def sweep_profile_table(curve: dict[str, Any]) -> Table:
    """`sweep --profile`: each point's wall time and what it compiled or loaded from the compilation cache."""
    table = Table(title="profile per point (train + audit)")
    for col in ("point", "seconds", "compiled", "from cache", "compile s"):
        table.add_column(col, justify="right")
    for row in curve["points"]:
        prof = row.get("profile")
        if prof:
            table.add_row(str(row["index"]), f"{prof['total_seconds']:.1f}", str(prof["compiled"]), str(prof["from_cache"]),
                          f"{prof['compile_seconds']:.1f}")
    table.caption = "compiled: programs XLA compiled in that point's process; from cache: loaded from the persistent cache."
    return table


def _write_sweep_report(sweep_dir: Path) -> None:
    """Write SWEEP_DIR/report.html (the curve with its seed spread); a failure is only a warning."""
    from mesascope.report import write_sweep_report

    try:
        path = write_sweep_report(sweep_dir)
    except Exception as err:  # noqa: BLE001 - the curve is already on disk
        err_console.print(f"warning: the sweep report could not be written ({error_line(err)})", highlight=False)
    else:
        console.print(f"[dim]report written to[/] {path}")


def curve_table(curve: dict[str, Any]) -> Table:
    """The terminal view of a sweep's curve: one row per point, mean ± sd over seeds and [min, max]."""
    goal = curve.get("goal") or "goal"
    table = Table(title=f"{curve['scenario']} sweep · deploy levels · mean ± sd over seeds [min, max]")
    if curve.get("fixed"):
        table.caption = "fixed: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in curve["fixed"].items())
    for name in curve["swept"]:
        table.add_column(name, style="bold")
    for col in ("seeds", "J_intended", f"{goal} 1st", f"uniform\n{goal} 1st"):
        table.add_column(col, justify="right")

    def fmt(stats: dict[str, Any] | None) -> str:
        if not stats or stats.get("mean") is None:
            return "-"
        return f"{stats['mean']:.3f} ± {stats['sd']:.3f} [{stats['min']:.2f}, {stats['max']:.2f}]"

    for row in curve["points"]:
        values = {**row["params"], **row["settings"]}
        cells = [values[n] if isinstance(values[n], str) else json.dumps(values[n]) for n in curve["swept"]]
        if row["status"] != "complete":
            error = row.get("error") or ""
            table.add_row(*cells, "-", f"[red]{row['status']}[/]", error if len(error) <= 80 else error[:77] + "...", "-")
            continue
        table.add_row(*cells, str(row["n_seeds"]), fmt(row.get("j_intended_deploy")), fmt(row.get("goal_first_deploy")),
                      _cell(row.get("uniform_goal_first_deploy")))
    return table


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
        # markup=False: a message may hold brackets ("pip install 'mesascope[bench]'") that are not markup.
        err_console.print(f"error: {err}", highlight=False, soft_wrap=True, markup=False)
        return 2
    return result if isinstance(result, int) else 0


def console_script() -> None:
    """The `mesascope` console script: `main`, then the process ends without tearing the interpreter down.

    Once a command has returned, everything it wrote is on disk and its output is printed; what is left is
    Python freeing every module and JAX freeing its compiled programs and thread pools: about 0.5 s after
    an audit on the 2-core machine (0.2 s after imports alone), 5% of a warm audit (issue 16). The exit
    handlers still run (`atexit`: MLflow, Ray, temporary folders, logging), and the ordinary exit is kept
    while any other non-daemon thread is alive, since the interpreter would wait for it.
    """
    import atexit
    import os
    import threading

    code = main()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    console_script()
