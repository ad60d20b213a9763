"""Compile once across processes (issue 16): with the persistent compilation cache, a second identical
`mesascope run` in a fresh process compiles nothing the first one compiled, and every sweep point after
the first loads its programs from the cache; `--profile` records both in audit.json `timings`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TINY = ["--seeds", "1", "--audit-levels", "4", "--param", "grid_size=5", "--param", "maze_sizes=[5]",
        "--set", "total_timesteps=2048", "--set", "num_envs=32", "--set", "num_steps=32", "--set", "level_pool=64"]  # fmt: skip


def _mesascope(args, cache, tmp_path):
    env = {**os.environ, "MESASCOPE_JAX_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-m", "mesascope.cli", *args, "--db", str(tmp_path / "runs.duckdb")],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.timeout(1200)
def test_a_second_identical_run_compiles_nothing(tmp_path):
    cache = tmp_path / "jax-cache"
    timings = []
    for name in ("first", "second"):
        _mesascope(["run", "cheese-corner-v0", *TINY, "--profile", "--out", str(tmp_path / name)], cache, tmp_path)
        timings.append(json.loads((tmp_path / name / "audit.json").read_text())["timings"])
    first, second = timings
    assert first["compiled"] > 0 and any(cache.iterdir())
    assert second["compiled"] == 0, {k: v["compiled"] for k, v in second["stages"].items() if v["compiled"]}
    assert second["from_cache"] >= first["compiled"] - first["from_cache"] > 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sweep_points_after_the_first_load_from_the_cache(tmp_path):
    cache = tmp_path / "jax-cache"
    done = _mesascope(["sweep", "cheese-corner-v0", "--param", "region=1,2,3", *TINY, "--workers", "1", "--profile",
                       "--out", str(tmp_path / "sweep")], cache, tmp_path)
    assert "profile per point" in done.stdout
    points = json.loads((tmp_path / "sweep" / "curve.json").read_text())["points"]
    first, rest = points[0]["profile"], [p["profile"] for p in points[1:]]
    assert first["compiled"] > 0
    assert all(p["compiled"] < first["compiled"] for p in rest), [p["compiled"] for p in points]
