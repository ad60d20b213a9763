"""Sweeps: grid parsing and validation, the curve's statistics, resuming an interrupted sweep without
retraining its finished points (real processes, killed mid-sweep), and a sweep on a local Ray cluster."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mesascope.cli import main
from mesascope.experiments.store import Store, run_id_for
from mesascope.experiments.sweep import parse_values, point_summary, sweep, sweep_id_for
from mesascope.types import MesascopeError

GRID = ["--param", "region=1,3", "--param", "grid_size=5", "--param", "maze_sizes=[5]"]
TINY = [
    "--seeds", "1", "--audit-levels", "4", "--workers", "1",
    "--set", "total_timesteps=2048", "--set", "num_envs=32", "--set", "num_steps=32", "--set", "level_pool=64",
]  # fmt: skip


def test_parse_values_splits_on_top_level_commas():
    assert parse_values("region=1,3", "--param") == ("region", [1, 3])
    assert parse_values("maze_sizes=[5],[5,7]", "--param") == ("maze_sizes", [[5], [5, 7]])
    assert parse_values("lr=0.001", "--set") == ("lr", [0.001])
    assert parse_values("kind=mlp,cnn", "--set") == ("kind", ["mlp", "cnn"])
    for bad in ("region", "region=", "region=1,,3"):
        with pytest.raises(MesascopeError, match="region|NAME"):
            parse_values(bad, "--param")


def test_point_summary_is_mean_and_sample_sd_over_seeds():
    audit = {
        "objectives": {"base": {"cheese": 1.0}, "intended": {"cheese": 1.0}, "cheese": {"cheese": 1.0}, "corner": {"corner": 1.0}},
        "candidate_goals": ["cheese", "corner"],
        "systems": [
            {"seed": k, "scores": {"deploy": {"intended": j}}, "first_reached": {"deploy": {"cheese": 1 - p, "corner": p}}}
            for k, (j, p) in enumerate([(0.2, 0.5), (0.4, 0.3), (0.9, 0.1)])
        ],
        "baselines": {"uniform": {"first_reached": {"deploy": {"cheese": 0.4, "corner": 0.2}}}},
    }
    s = point_summary(audit)
    assert s["goal"] == "corner" and s["n_seeds"] == 3  # the candidate goal that is not the intended one
    assert s["j_intended_deploy"]["mean"] == pytest.approx(0.5)
    assert s["j_intended_deploy"]["sd"] == pytest.approx(((0.09 + 0.01 + 0.16) / 2) ** 0.5)
    assert (s["j_intended_deploy"]["min"], s["j_intended_deploy"]["max"]) == (0.2, 0.9)
    assert s["goal_first_deploy"]["mean"] == pytest.approx(0.3) and s["goal_first_deploy"]["sd"] == pytest.approx(0.2)
    assert s["uniform_goal_first_deploy"] == 0.2
    assert point_summary(audit, "cheese")["goal_first_deploy"]["mean"] == pytest.approx(0.7)


def test_point_summary_carries_the_scenarios_policy_measures_and_the_uniform_value():
    audit = {
        "candidate_goals": ["apples", "shields"], "objectives": {"intended": {"apple": 1.0}},
        "scenario_measures": {"pickups": {"of": "policy", "splits": ["train", "deploy"]},
                              "can_skip": {"of": "levels", "splits": ["deploy"], "value": {"deploy": 0.9}}},
        "systems": [{"seed": k, "scores": {"deploy": {"intended": 1.0}}, "scenario_measures": {"pickups": {"train": t, "deploy": d}}}
                    for k, (t, d) in enumerate([(0.1, 0.8), (0.3, 1.0)])],
        "baselines": {"uniform": {"scenario_measures": {"pickups": {"train": 0.5, "deploy": 0.6}}}},
    }
    s = point_summary(audit, "shields")
    assert s["measure:pickups:deploy"]["mean"] == pytest.approx(0.9) and s["measure:pickups:train"]["min"] == 0.1
    assert s["uniform_measure:pickups:deploy"] == 0.6
    assert not any("can_skip" in k for k in s)  # a level measure does not depend on the seed


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"params": {"colour": [1, 2]}}, "has no parameter"),
        ({"settings": {"learning_speed": [1]}}, "has no setting"),
        ({"params": {"region": [1]}, "backend": "slurm"}, "choose one of: local, ray"),
        ({"params": {"region": [1]}, "goal": "treasure"}, "choose one of: cheese, corner"),
        ({}, "at least one --param"),
        ({"params": {"region": [1]}, "workers": 0}, "--workers must be at least 1"),
    ],
)
def test_bad_sweeps_fail_before_anything_is_written(tmp_path, kwargs, needle):
    with pytest.raises(MesascopeError, match=needle):
        sweep("cheese-corner-v0", out=tmp_path / "sw", **kwargs)
    assert not (tmp_path / "sw").exists()


def test_a_ray_address_nobody_answers_is_one_error_line(tmp_path, capsys):
    import socket

    pytest.importorskip("ray", reason="Ray is in the optional extras `ray` and `test`")
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["sweep", "cheese-corner-v0", *GRID, *TINY, "--backend", "ray", "--address", f"127.0.0.1:{port}", "--out", str(tmp_path / "sw")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: no Ray cluster answers at 127.0.0.1:{port}") and len(err.splitlines()) == 1
    assert not (tmp_path / "sw").exists()


def test_a_folder_holding_another_sweep_is_not_reused(tmp_path, capsys):
    out = tmp_path / "sw"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"scenario": "cheese-corner-v0", "params": {"region": [2, 4]}, "settings": {},
                                                "seeds": 1, "preset": "fast", "audit_levels": 4}))
    before = (out / "sweep.json").read_text()
    assert main(["sweep", "cheese-corner-v0", *GRID, *TINY, "--out", str(out), "--db", str(tmp_path / "r.duckdb")]) == 2
    err = capsys.readouterr().err
    assert "holds a different sweep (params" in err and len(err.strip().splitlines()) == 1
    assert (out / "sweep.json").read_text() == before and sorted(p.name for p in out.iterdir()) == ["sweep.json"]


def _files(point: Path) -> dict[str, int]:
    return {str(p.relative_to(point)): p.stat().st_mtime_ns for p in sorted(point.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_without_retraining_finished_points(tmp_path, capsys):
    out, db = tmp_path / "sweep", tmp_path / "runs.duckdb"
    argv = ["sweep", "cheese-corner-v0", *GRID, *TINY, "--out", str(out), "--db", str(db)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesascope.cli", *argv],
        start_new_session=True,  # its own process group: the kill below reaches its pool worker too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 900
        # point-001 has started once its run.json exists, so point-000 is completely finished.
        while not (out / "point-001" / "run.json").exists():
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "point-001" / "audit.json").exists()
    finished = _files(out / "point-000")
    assert "audit.json" in finished and "systems/seed-0.eqx" in finished

    assert main(argv) == 0
    printed = capsys.readouterr()
    shown = printed.out + printed.err
    assert "point-000" in shown and "(skipped)" in shown
    assert _files(out / "point-000") == finished, "a finished point was redone"
    assert (out / "point-001" / "audit.json").exists()
    assert (out / "point-001.interrupted-1" / "run.json").exists()  # the partial folder is kept aside
    curve = json.loads((out / "curve.json").read_text())
    assert curve["goal"] == "corner" and curve["swept"] == ["region"]
    assert curve["fixed"] == {"grid_size": 5, "maze_sizes": [5], "total_timesteps": 2048, "num_envs": 32, "num_steps": 32, "level_pool": 64}
    assert [(p["params"]["region"], p["status"], p["n_seeds"]) for p in curve["points"]] == [(1, "complete", 1), (3, "complete", 1)]
    for p in curve["points"]:
        audit = json.loads((out / p["dir"] / "audit.json").read_text())
        assert p["j_intended_deploy"]["values"] == [audit["systems"][0]["scores"]["deploy"]["intended"]]
        assert p["goal_first_deploy"]["values"] == [audit["systems"][0]["first_reached"]["deploy"]["corner"]]
    with (out / "curve.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["region"] for r in rows] == ["1", "3"]
    assert float(rows[1]["j_intended_deploy_mean"]) == curve["points"][1]["j_intended_deploy"]["mean"]
    store = Store(db)
    sid = sweep_id_for(out)
    assert store.query("SELECT point, status, run_id FROM sweep_points WHERE sweep_id = ? ORDER BY point", [sid])[1] == [
        (0, "complete", run_id_for(out / "point-000")),
        (1, "complete", run_id_for(out / "point-001")),
    ]
    assert store.query("SELECT sweep_point, status FROM runs WHERE sweep_id = ? ORDER BY 1", [sid])[1] == [(0, "complete"), (1, "complete")]
    assert store.query("SELECT status FROM sweeps")[1] == [("complete",)]
    # `mesascope ingest` rebuilds the same sweep points into a fresh store from the folders alone.
    fresh = tmp_path / "fresh.duckdb"
    assert main(["ingest", str(out), "--db", str(fresh)]) == 0
    curve_cols = "point, run_id, status, n_seeds, j_intended_deploy_mean, goal_first_deploy_sd, uniform_goal_first_deploy"
    query = f"SELECT {curve_cols} FROM sweep_points ORDER BY point"
    assert Store(fresh).query(query)[1] == store.query(query)[1]


@pytest.mark.slow
def test_a_sweep_runs_on_a_local_ray_cluster(tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="Ray is in the optional extras `ray` and `test`")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        out, db = tmp_path / "sweep", tmp_path / "runs.duckdb"
        # A separate driver process connects to the test's cluster by address, as on a real cluster.
        done = subprocess.run(
            [sys.executable, "-m", "mesascope.cli", "sweep", "cheese-corner-v0", *GRID, *TINY, "--workers", "2",
             "--backend", "ray", "--address", address, "--out", str(out), "--db", str(db)],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        ray.shutdown()
    assert done.returncode == 0, done.stderr
    curve = json.loads((out / "curve.json").read_text())
    assert [p["status"] for p in curve["points"]] == ["complete", "complete"]
    assert Store(db).query("SELECT count(*) FROM runs WHERE status = 'complete' AND sweep_id IS NOT NULL")[1] == [(2,)]
