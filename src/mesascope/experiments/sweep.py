"""Sweeps: one run per point of a grid of scenario parameters x training settings, then the curve.

A sweep folder holds `sweep.json` (the grid and its points), one run folder per point
(`point-000/`, ...; each a complete `mesascope run` folder) and, when the points are done, the curve
(`curve.json`, `curve.csv`): per point, the mean and spread over seeds of `J_intended` on deploy levels
and of the probability that the scenario's proxy goal (a candidate goal whose objective is not the
intended objective) is reached first on deploy levels.

Points run on a local process pool (`backend="local"`, spawned processes: JAX must not be forked) or
on Ray (`backend="ray"`, a local Ray started here or an existing cluster at `address`). A point is
finished when its `audit.json` exists; running the same sweep again skips finished points, re-audits
points whose training finished, and retrains the rest (their partial folders are kept, renamed
`point-NNN.interrupted-K`). Every run is recorded in the result store (`mesascope.experiments.store`)
by the worker that runs it; the parent then re-ingests the finished folder and records the point.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from mesascope.experiments.store import Store, proxy_goals, recorder, run_id_for
from mesascope.types import MesascopeError, error_line, try_read_json_object

__all__ = ["BACKENDS", "parse_values", "point_summary", "run_point", "sweep", "sweep_id_for"]

BACKENDS = ("local", "ray")
_GRID_KEYS = ("scenario", "params", "settings", "seeds", "preset", "audit_levels", "thresholds")


def parse_values(item: str, what: str) -> tuple[str, list[Any]]:
    """`NAME=v1,v2,...` -> `(NAME, [v1, v2, ...])`, each value JSON if it parses, else a string.

    Commas inside brackets belong to one value: `maze_sizes=[5],[5,7]` is two values.
    """
    if "=" not in item:
        raise MesascopeError(f"{what} {item!r} is not NAME=V1,V2,... (e.g. {what} region=1,3)")
    name, raw = item.split("=", 1)
    if not name or not raw:
        raise MesascopeError(f"{what} {item!r} needs a name and at least one value (e.g. {what} region=1,3)")
    parts, depth, cur = [], 0, ""
    for ch in raw:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    values = []
    for p in parts:
        p = p.strip()
        if not p:
            raise MesascopeError(f"{what} {item!r} has an empty value")
        try:
            values.append(json.loads(p))
        except json.JSONDecodeError:
            values.append(p)
    return name, values


def sweep_id_for(sweep_dir: Path | str) -> str:
    """A sweep's id in the store (a hash of its folder's absolute path, like run ids)."""
    return "s" + run_id_for(sweep_dir)[:9]


def _stats(xs: Sequence[float]) -> dict[str, Any]:
    xs = [float(x) for x in xs if x is not None and math.isfinite(float(x))]
    if not xs:
        return {"mean": None, "sd": None, "min": None, "max": None, "values": []}
    mean = sum(xs) / len(xs)
    # Sample standard deviation over seeds (0 for a single seed).
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(xs), "max": max(xs), "values": xs}


def point_summary(audit: dict[str, Any], goal: str | None = None, run_dir: Path | None = None) -> dict[str, Any]:
    """The curve numbers of one finished point from its audit (and its training record, when given).

    Returns:
        `{"n_seeds", "goal", "j_intended_deploy": stats, "goal_first_deploy": stats,
        "uniform_goal_first_deploy"}` where stats are mean, sample sd, min, max and the per-seed values;
        also `regret_intended_deploy` (the exact mean `V* - V^pi` of the intended objective on deploy
        levels) when the audit has it, `measure:<name>:<split>` for each of the scenario's policy measures
        (with the uniform policy's as `uniform_measure:<name>:<split>`), and with `run_dir`, from its
        `training.npz`, `shown_separating`
        (the share of training episodes on levels that separate the intended goal from a proxy) and
        `train_steps_per_second` (environment steps of all seeds over the training wall time).
    """
    if goal is None:
        proxies = proxy_goals(audit)
        goal = proxies[0] if proxies else None
    systems = [s for s in audit.get("systems") or [] if isinstance(s, dict)]
    j = [((s.get("scores") or {}).get("deploy") or {}).get("intended") for s in systems]
    first = [((s.get("first_reached") or {}).get("deploy") or {}).get(goal) for s in systems] if goal else []
    uniform = ((((audit.get("baselines") or {}).get("uniform") or {}).get("first_reached") or {}).get("deploy") or {})
    out = {
        "n_seeds": len(systems),
        "goal": goal,
        "j_intended_deploy": _stats([x for x in j if x is not None]),
        "goal_first_deploy": _stats([x for x in first if x is not None]),
        "uniform_goal_first_deploy": uniform.get(goal) if goal else None,
    }
    regret = [((s.get("regret") or {}).get("deploy") or {}).get("intended") for s in systems]
    if any(x is not None for x in regret):
        out["regret_intended_deploy"] = _stats([x for x in regret if x is not None])
    out |= _measure_summary(audit, systems)
    out |= _training_summary(run_dir, audit) if run_dir is not None else {}
    return out


def _measure_summary(audit: dict[str, Any], systems: list[dict[str, Any]]) -> dict[str, Any]:
    """`measure:<name>:<split>` stats over seeds of each of the scenario's policy measures, and the uniform
    policy's value as `uniform_measure:<name>:<split>` (e.g. shield pickups against the training episode length)."""
    uniform = (((audit.get("baselines") or {}).get("uniform") or {}).get("scenario_measures") or {})
    out: dict[str, Any] = {}
    for name, spec in (audit.get("scenario_measures") or {}).items():
        if not isinstance(spec, dict) or spec.get("of") != "policy":
            continue
        for split in spec.get("splits") or ():
            values = [((s.get("scenario_measures") or {}).get(name) or {}).get(split) for s in systems]
            values = [v for v in values if isinstance(v, (int, float))]
            if values:
                out[f"measure:{name}:{split}"] = _stats(values)
                out[f"uniform_measure:{name}:{split}"] = (uniform.get(name) or {}).get(split)
    return out


def _training_summary(run_dir: Path, audit: dict[str, Any]) -> dict[str, Any]:
    """`shown_separating` and `train_steps_per_second` from a point's training.npz (empty when absent)."""
    import numpy as np

    try:
        with np.load(Path(run_dir) / "training.npz") as data:
            shown = np.asarray(data["shown_separating"], float) if "shown_separating" in data.files else None
            seconds = float(data["train_seconds"]) if "train_seconds" in data.files else None
    except (OSError, ValueError, KeyError):
        return {}
    out: dict[str, Any] = {}
    if shown is not None:
        out["shown_separating"] = _stats(shown.tolist())
    steps = (audit.get("config") or {}).get("total_timesteps")
    if seconds and isinstance(steps, (int, float)):
        out["train_steps_per_second"] = _stats([len(audit.get("seeds") or []) * steps / seconds])
    return out


def _trained(run_dir: Path) -> bool:
    """Training finished: training.npz (written last) and every seed's saved system exist."""
    meta = try_read_json_object(run_dir / "run.json")
    if meta is None or not (run_dir / "training.npz").exists():
        return False
    return all(any((run_dir / "systems").glob(f"seed-{s}.*")) for s in meta.get("seeds", []))


def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Run (or finish) one sweep point in this process; returns `{"index", "status", "error", "action"}`.

    `task` is plain data (it crosses process boundaries): `index`, `dir`, `scenario`, `params`,
    `settings`, `seeds`, `preset`, `audit_levels`, `thresholds` (a dict), `db`, `sweep_id`.
    """
    import mesascope  # noqa: F401 - sets the XLA flag before JAX starts in a fresh worker
    from mesascope.experiments.profiling import NULL_TIMER, StageTimer
    from mesascope.experiments.run import AuditConfig, audit_run, run
    from mesascope.properties import Thresholds

    thresholds = Thresholds.from_dict(task.get("thresholds") or {})
    timer = StageTimer() if task.get("profile") else NULL_TIMER

    out = Path(task["dir"])
    store = Store(task["db"]) if task.get("db") else None
    warnings: list[str] = []
    events = recorder(store, (task["sweep_id"], task["index"]), warnings.append) if store else None
    audit_cfg = AuditConfig(n_train=task["audit_levels"], n_deploy=task["audit_levels"])
    try:
        if (out / "audit.json").exists():
            return {"index": task["index"], "status": "complete", "error": None, "action": "skipped"}
        if _trained(out):
            # Training finished before the interruption: only the audit is redone.
            result = audit_run(out, audit_cfg, thresholds=thresholds, timer=timer)
            if events:
                events("audited", out, result)
                events("complete", out, result)
            action = "audited"
        else:
            if (out / "run.json").exists() or (out.exists() and any(out.iterdir())):
                k = 1
                while out.with_name(f"{out.name}.interrupted-{k}").exists():
                    k += 1
                out.rename(out.with_name(f"{out.name}.interrupted-{k}"))
            run(
                task["scenario"],
                seeds=task["seeds"],
                preset=task["preset"],
                out=out,
                audit=audit_cfg,
                overrides=dict(task["settings"]),
                scenario_params=dict(task["params"]),
                events=events,
                thresholds=thresholds,
                timer=timer,
            )
            action = "trained"
    except Exception as err:  # noqa: BLE001 - one failed point must not stop the others
        return {
            "index": task["index"],
            "status": "failed",
            "error": error_line(err),
            "action": "failed",
            "warnings": warnings,
        }
    done = {"index": task["index"], "status": "complete", "error": None, "action": action, "warnings": warnings}
    if timer.enabled:  # `--profile`: what this point spent, and what it compiled or took from the cache
        prof = timer.as_dict()
        done["profile"] = {k: prof[k] for k in ("total_seconds", "compiled", "from_cache", "compile_seconds")}
    return done


def _validate(scenario_id: str, params: dict[str, list[Any]], settings: dict[str, list[Any]], preset: str, goal: str | None) -> str | None:
    """Fail fast (before any training) on a bad scenario, parameter, setting, preset or goal.

    Returns the proxy goal the curve reports.
    """
    from mesascope.experiments.run import plan_run
    from mesascope.scenarios import get_scenario

    sc = get_scenario(scenario_id)
    # Every point is planned (parameters and settings checked) before any point trains.
    for combo in itertools.product(*params.values()):
        for scombo in itertools.product(*settings.values()):
            plan_run(scenario_id, preset=preset, overrides=dict(zip(settings, scombo)), scenario_params=dict(zip(params, combo)))
    goals = [g.name for g in sc.candidate_goals]
    if sc.kind == "study":
        if goal is not None:
            raise MesascopeError(f"--goal: {scenario_id} is a study; it has no candidate goals")
        return None
    if goal is not None:
        if goal not in goals:
            raise MesascopeError(f"--goal {goal!r} is not a candidate goal of {scenario_id}; choose one of: {', '.join(goals)}")
        return goal
    proxies = [g.name for g in sc.candidate_goals if dict(g.weights) != dict(sc.intended_objective.weights)]
    return proxies[0] if proxies else None


def _points(params: dict[str, list[Any]], settings: dict[str, list[Any]]) -> list[dict[str, Any]]:
    out = []
    names = list(params) + list(settings)
    for i, combo in enumerate(itertools.product(*params.values(), *settings.values())):
        values = dict(zip(names, combo))
        out.append(
            {
                "index": i,
                "dir": f"point-{i:03d}",
                "params": {k: values[k] for k in params},
                "settings": {k: values[k] for k in settings},
            }
        )
    return out


CURVE_METRICS = ("j_intended_deploy", "goal_first_deploy", "regret_intended_deploy", "shown_separating",
                 "train_steps_per_second")
"""Every metric a point can carry (`point_summary`), in the order of curve.csv's columns; the scenario's
own measures (`measure:<name>:<split>`) follow them."""


def _write_curve(sweep_dir: Path, desc: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    grid = {**desc["params"], **desc["settings"]}
    # Names given a single value are constants of the sweep, not axes of the curve.
    swept = [n for n, vs in grid.items() if len(vs) > 1] or list(grid)
    fixed = {n: vs[0] for n, vs in grid.items() if n not in swept}
    curve = {"scenario": desc["scenario"], "goal": desc["goal"], "swept": swept, "fixed": fixed, "points": rows}
    tmp = sweep_dir / "curve.json.tmp"
    tmp.write_text(json.dumps(curve, indent=2) + "\n")
    tmp.replace(sweep_dir / "curve.json")
    cols = ["point", *swept, "status", "n_seeds", "goal"]
    metrics = [k for k in CURVE_METRICS if k in ("j_intended_deploy", "goal_first_deploy") or any(k in r for r in rows)]
    measures = list(dict.fromkeys(k for r in rows for k in r if k.startswith("measure:")))
    for key in metrics + measures:
        cols += [f"{key}_{s}" for s in ("mean", "sd", "min", "max")]
    cols += ["uniform_goal_first_deploy", *(f"uniform_{k}" for k in measures)]
    with (sweep_dir / "curve.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            values = {**r["params"], **r["settings"]}
            line = [r["index"], *(json.dumps(values[k]) if not isinstance(values[k], str) else values[k] for k in swept)]
            line += [r["status"], r.get("n_seeds"), r.get("goal")]
            for key in metrics + measures:
                stats = r.get(key) or {}
                line += [stats.get(s) for s in ("mean", "sd", "min", "max")]
            line += [r.get("uniform_goal_first_deploy"), *(r.get(f"uniform_{k}") for k in measures)]
            w.writerow(line)


def sweep(
    scenario_id: str,
    *,
    params: dict[str, list[Any]] | None = None,
    settings: dict[str, list[Any]] | None = None,
    seeds: int = 4,
    preset: str = "fast",
    out: Path,
    backend: str = "local",
    address: str | None = None,
    workers: int | None = None,
    audit_levels: int = 256,
    goal: str | None = None,
    db: Path | None = None,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    thresholds: Any = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Run every point of the grid `params x settings` (each with `seeds` seeds) and write the curve.

    Args:
        scenario_id: A registered scenario.
        params: Scenario parameter -> values to sweep (`--param`).
        settings: Training setting -> values to sweep (`--set`).
        out: The sweep folder (created; resumed if it holds the same sweep).
        backend: "local" (process pool) or "ray".
        address: Ray cluster address (None: start a local Ray for this sweep).
        workers: Points run at once (default: half the CPUs, at least 1).
        goal: The candidate goal whose first-reached probability the curve reports (default: the proxy).
        db: The result store (None: no store).
        on_point: Called with each point's row as it finishes.
        thresholds: Every point's `Thresholds` (default: SPEC.md's defaults), recorded in `sweep.json`.
        profile: Time every stage of every point (each point's audit.json `timings`); each row of the curve
            gets `profile`: its wall seconds, programs compiled and programs loaded from the persistent
            compilation cache (the first point compiles, the others should find it in the cache).

    Returns:
        The curve: `{"scenario", "goal", "swept", "points": [...]}` (also in `out/curve.json`).

    Raises:
        MesascopeError: on bad options, a folder holding a different sweep, or when points failed
            (after the curve of the finished ones is written).
    """
    from mesascope.properties import Thresholds

    thresholds = thresholds or Thresholds()
    params, settings = dict(params or {}), dict(settings or {})
    if backend not in BACKENDS:
        raise MesascopeError(f"unknown --backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if seeds < 1:
        raise MesascopeError(f"--seeds must be at least 1; got {seeds}")
    if not params and not settings:
        raise MesascopeError("a sweep needs at least one --param NAME=V1,V2 or --set NAME=V1,V2")
    if audit_levels < 1:
        raise MesascopeError(f"--audit-levels must be at least 1; got {audit_levels}")
    overlap = set(params) & set(settings)
    if overlap:
        raise MesascopeError(f"{sorted(overlap)} given both as --param and --set; use one")
    if workers is not None and workers < 1:
        raise MesascopeError(f"--workers must be at least 1; got {workers}")
    workers = workers or max(1, (os.cpu_count() or 2) // 2)
    store = Store(db) if db else None
    if store is not None:
        store.check()
    goal = _validate(scenario_id, params, settings, preset, goal)
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise MesascopeError("--backend ray needs Ray: pip install 'mesascope[ray]'") from None
        if address:
            _check_reachable(address)

    out = Path(out)
    desc = {
        "scenario": scenario_id,
        "params": params,
        "settings": settings,
        "seeds": seeds,
        "preset": preset,
        "audit_levels": audit_levels,
        "goal": goal,
        "thresholds": thresholds.to_dict(),
        "points": _points(params, settings),
    }
    old = try_read_json_object(out / "sweep.json")
    if (out / "sweep.json").exists() and old is None:
        raise MesascopeError(f"{out / 'sweep.json'} is unreadable; choose another --out folder")
    if old is not None:
        differs = [k for k in _GRID_KEYS if json.loads(json.dumps(old.get(k))) != json.loads(json.dumps(desc[k]))]
        if differs:
            raise MesascopeError(
                f"{out} holds a different sweep ({', '.join(differs)} differ); rerun it with the same options "
                "to resume it, or choose another --out folder"
            )
        desc["created"] = old.get("created")
    else:
        from mesascope import __version__

        desc["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        desc["mesascope_version"] = __version__
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.json").write_text(json.dumps(desc, indent=2) + "\n")
    sweep_id = sweep_id_for(out)
    warnings: list[str] = []

    def record(fn: Callable[[], Any]) -> None:
        if store is None:
            return
        try:
            fn()
        except MesascopeError as err:  # the folders are the record; the store can be re-ingested
            warnings.append(str(err))

    record(lambda: store.record_sweep(sweep_id, out, desc, backend, "running"))

    rows: dict[int, dict[str, Any]] = {}

    def finish(point: dict[str, Any], status: str, error: str | None, action: str, prof: dict[str, Any] | None = None) -> None:
        run_dir = out / point["dir"]
        row = {**point, "status": status, "error": error, "action": action, "path": str(run_dir), "run_id": run_id_for(run_dir)}
        if prof is not None:
            row["profile"] = prof
        audit = try_read_json_object(run_dir / "audit.json") if status == "complete" else None
        if audit is not None:
            row.update(point_summary(audit, goal, run_dir))
        else:
            row.update({"status": "failed" if status == "complete" else status, "goal": goal})
        rows[point["index"]] = row
        if (run_dir / "run.json").exists():
            record(lambda: store.ingest_run(run_dir, (sweep_id, point["index"])))
        record(lambda: store.record_sweep_point(sweep_id, row))
        if on_point is not None:
            on_point(row)

    pending = []
    for point in desc["points"]:
        if (out / point["dir"] / "audit.json").exists():
            finish(point, "complete", None, "skipped")
        else:
            pending.append(point)
    tasks = [
        {
            **p,
            "dir": str(out / p["dir"]),
            "scenario": scenario_id,
            "seeds": seeds,
            "preset": preset,
            "audit_levels": audit_levels,
            "thresholds": thresholds.to_dict(),
            "db": str(db) if db else None,
            "sweep_id": sweep_id,
            "profile": profile,
        }
        for p in pending
    ]
    by_index = {p["index"]: p for p in pending}

    def collect(result: dict[str, Any]) -> None:
        warnings.extend(result.get("warnings") or [])
        finish(by_index[result["index"]], result["status"], result.get("error"), result.get("action", ""), result.get("profile"))

    if tasks:
        try:
            if backend == "local":
                _run_local(tasks, workers, collect)
            else:
                _run_ray(tasks, workers, address, collect)
        except BaseException:  # interrupted (Ctrl-C) or the backend failed: finished points stay finished
            record(lambda: store.record_sweep(sweep_id, out, desc, backend, "incomplete"))
            raise

    ordered = [rows[i] for i in sorted(rows)]
    _write_curve(out, desc, ordered)
    failed = [r for r in ordered if r["status"] != "complete"]
    record(lambda: store.record_sweep(sweep_id, out, desc, backend, "incomplete" if failed else "complete"))
    curve = json.loads((out / "curve.json").read_text())
    curve["warnings"] = warnings
    if failed:
        first = failed[0]
        raise MesascopeError(
            f"{len(failed)} of {len(ordered)} sweep points failed ({first['dir']}: {first.get('error')}); "
            f"the curve of the others is in {out / 'curve.json'}; rerun the same command to retry the failed points"
        )
    return curve


def _run_local(tasks: list[dict[str, Any]], workers: int, collect: Callable[[dict[str, Any]], None]) -> None:
    # Spawned, not forked: a forked JAX runtime can deadlock.
    ctx = multiprocessing.get_context("spawn")
    workers = min(workers, len(tasks))
    # Points run side by side take the cores an audit's helper process would use.
    initializer = _without_helper if workers > 1 else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=initializer) as pool:
        futures = {pool.submit(run_point, t): t for t in tasks}
        try:
            while futures:
                done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in done:
                    task = futures.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as err:  # noqa: BLE001 - a worker that died (e.g. out of memory)
                        result = {"index": task["index"], "status": "failed", "error": error_line(err)}
                    collect(result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _without_helper() -> None:
    from mesascope.experiments.helper import HELPER_ENV

    os.environ[HELPER_ENV] = "off"


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a `host:port` (or `ray://host:port`) nobody listens on: Ray itself retries for minutes."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # e.g. "auto": left to Ray
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise MesascopeError(
            f"no Ray cluster answers at {address} ({err.strerror or type(err).__name__}); start one with "
            "`ray start --head` and pass the address it prints, or drop --address to start a local Ray"
        ) from None


def _run_ray(tasks: list[dict[str, Any]], workers: int, address: str | None, collect: Callable[[dict[str, Any]], None]) -> None:
    try:
        import ray
    except ImportError:
        raise MesascopeError("--backend ray needs Ray: pip install 'mesascope[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        except Exception as err:  # noqa: BLE001 - connection problems become one line
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise MesascopeError(f"could not start or reach {where}: {error_line(err, with_type=False)}") from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_point)
        refs = {remote.remote(t): t for t in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                task = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - a worker that died
                    result = {"index": task["index"], "status": "failed", "error": error_line(err)}
                collect(result)
    finally:
        if started_here:
            ray.shutdown()
