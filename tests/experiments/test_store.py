"""The result store: a run recorded as it goes and read back equal to its audit.json, an interrupted run
kept as incomplete, foreign or corrupt files refused and left byte-for-byte untouched, versioned
migrations, and several writer processes at once losing no rows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rich.console import Console

from mesascope import cli
from mesascope.cli import main
from mesascope.experiments import store as store_mod
from mesascope.experiments.store import (
    SCHEMA_VERSION,
    Migration,
    Store,
    StoreError,
    ingest_tree,
    recorder,
    run_id_for,
)

TINY_PARAMS = {"grid_size": 5, "maze_sizes": (5,)}
TINY_TRAIN = {"total_timesteps": 2 * 32 * 32, "num_envs": 32, "num_steps": 32, "level_pool": 64}


def _tiny_run(out: Path, store: Store, seeds: int = 2, **kw):
    from mesascope.experiments.run import AuditConfig, run

    warnings: list[str] = []
    result = run(
        "cheese-corner-v0",
        seeds=seeds,
        out=out,
        audit=AuditConfig(n_train=4, n_deploy=4),
        overrides=TINY_TRAIN,
        scenario_params=TINY_PARAMS,
        events=recorder(store, warn=warnings.append),
        **kw,
    )
    assert warnings == []
    return result


def _snapshot(store: Store, out: Path) -> dict[str, list]:
    rid = run_id_for(out)
    return {
        "run": store.query("SELECT status, error, finished IS NOT NULL FROM runs WHERE run_id = ?", [rid])[1],
        "systems": store.query("SELECT seed, status, artifact FROM systems WHERE run_id = ? ORDER BY seed", [rid])[1],
        "scores": store.query("SELECT count(*) FROM scores WHERE run_id = ?", [rid])[1],
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()),
    }


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    """One tiny run (2 seeds) that fails after training, recorded live; then re-audited and recorded.

    Returns `(store, run folder, snapshot of the store and folder right after the failure)`.
    """
    import mesascope.experiments.run as run_mod

    runs = tmp_path_factory.mktemp("runs")
    store = Store(runs / "runs.duckdb")
    out = runs / "tiny"

    def broken_audit(*args, **kwargs):
        raise RuntimeError("simulated crash after training")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_mod, "audit_run", broken_audit)
        with pytest.raises(RuntimeError, match="simulated crash"):
            _tiny_run(out, store)
    interrupted = _snapshot(store, out)
    # Recovery as `mesascope audit DIR` does it: audit the saved systems, then record the folder.
    result = run_mod.audit_run(out, run_mod.AuditConfig(n_train=4, n_deploy=4))
    recorder(store)("audited", out, result)
    recorder(store)("complete", out, result)
    return store, out, interrupted


def test_a_run_round_trips_through_the_store(recorded_run):
    store, out, _ = recorded_run
    audit = json.loads((out / "audit.json").read_text())
    rid = run_id_for(out)
    _, rows = store.query("SELECT status, scenario, preset, seeds, error, proxy_goal FROM runs WHERE run_id = ?", [rid])
    assert rows == [("complete", "cheese-corner-v0", "fast", [0, 1], None, "corner")]
    _, rows = store.query("SELECT seed, status FROM systems WHERE run_id = ? ORDER BY seed", [rid])
    assert rows == [(0, "audited"), (1, "audited")]
    _, scores = store.query("SELECT seed, split, objective, j, v FROM scores WHERE run_id = ? AND policy = 'system'", [rid])
    expected = {
        (s["seed"], split, obj): (j, s["values"][split][obj])
        for s in audit["systems"]
        for split, objs in s["scores"].items()
        for obj, j in objs.items()
    }
    assert {(seed, split, obj): (j, v) for seed, split, obj, j, v in scores} == expected  # exact equality
    _, first = store.query("SELECT seed, split, goal, probability FROM first_reached WHERE run_id = ? AND policy = 'system'", [rid])
    assert {(a, b, c): p for a, b, c, p in first} == {
        (s["seed"], split, g): p for s in audit["systems"] for split, gs in s["first_reached"].items() for g, p in gs.items()
    }
    _, uniform = store.query("SELECT split, objective, j FROM scores WHERE run_id = ? AND policy = 'uniform'", [rid])
    assert {(a, b): j for a, b, j in uniform} == {
        (split, o): j for split, objs in audit["baselines"]["uniform"]["scores"].items() for o, j in objs.items()
    }
    # Properties and verdicts get their own rows, one per system and name, equal to the audit's.
    n_props = sum(len(s.get("properties") or {}) for s in audit["systems"])
    n_verdicts = sum(len(s.get("verdicts") or {}) for s in audit["systems"])
    assert store.query("SELECT count(*) FROM properties WHERE run_id = ?", [rid])[1][0][0] == n_props
    assert store.query("SELECT count(*) FROM verdicts WHERE run_id = ?", [rid])[1][0][0] == n_verdicts
    for s in audit["systems"]:
        for school, v in (s.get("verdicts") or {}).items():
            got = store.query("SELECT label, reason FROM verdicts WHERE run_id = ? AND seed = ? AND school = ?", [rid, s["seed"], school])[1]
            assert got == [(v["label"], v["reason"])]
    # The whole per-system block is kept as JSON, so new audit keys need no schema change.
    data = json.loads(store.query("SELECT data FROM systems WHERE run_id = ? AND seed = 0", [rid])[1][0][0])
    assert data == json.loads(json.dumps(audit["systems"][0]))
    # Re-ingesting the folder replaces, never duplicates.
    before = store.query("SELECT count(*) FROM scores")[1]
    assert store.ingest_run(out) == (rid, "complete")
    assert store.query("SELECT count(*) FROM scores")[1] == before
    assert store.query("SELECT count(*) FROM runs")[1] == [(1,)]


def test_runs_query_and_compare_commands(recorded_run, tmp_path, capsys, monkeypatch):
    # Room for every column of the runs table. A wide console, not $COLUMNS: rich fixes the width when the
    # console is made if $COLUMNS is set then (pytest-xdist's workers start with COLUMNS=80).
    monkeypatch.setattr(cli, "console", Console(width=250))
    store, out, _ = recorded_run
    rid = run_id_for(out)
    assert main(["runs", "--db", str(store.path)]) == 0
    text = capsys.readouterr().out
    assert rid in text and "complete" in text and "cheese-corner-v0" in text
    assert main(["query", "SELECT objective, count(*) AS n FROM scores GROUP BY ALL ORDER BY 1", "--db", str(store.path)]) == 0
    assert "intended" in capsys.readouterr().out
    for sql in ("SELEC 1", "DELETE FROM runs"):  # SQL errors and writes are one error line
        assert main(["query", sql, "--db", str(store.path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: query failed") and len(err.splitlines()) == 1
    assert store.query("SELECT count(*) FROM runs")[1] == [(1,)]
    # A copy of the run with one score changed: compare shows the difference and the setting that differs.
    other = tmp_path / "other"
    shutil.copytree(out, other)
    audit = json.loads((other / "audit.json").read_text())
    audit["systems"][0]["scores"]["deploy"]["intended"] += 0.5
    (other / "audit.json").write_text(json.dumps(audit))
    store.ingest_run(other)
    diff = store_mod.compare_runs(store, rid, str(other))
    assert ("path", str(out.resolve()), str(other.resolve())) in diff["settings"]
    row = next(r for r in diff["scores"] if r[:2] == ("deploy", "intended"))
    assert row[3] - row[2] == pytest.approx(0.25)  # +0.5 on one of two seeds
    assert main(["compare", rid, str(other), "--db", str(store.path)]) == 0
    assert "+0.250" in capsys.readouterr().out
    with store.write() as con:  # leave the shared store as it was
        for table in ("runs", "systems", "scores", "first_reached", "properties", "verdicts"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id_for(other)])


def test_an_interrupted_run_keeps_its_systems_and_is_incomplete(recorded_run):
    _, _, interrupted = recorded_run
    assert interrupted["run"] == [("incomplete", "RuntimeError: simulated crash after training", True)]
    assert interrupted["systems"] == [(0, "trained", "systems/seed-0.eqx"), (1, "trained", "systems/seed-1.eqx")]
    assert interrupted["scores"] == [(0,)]
    assert "systems/seed-0.eqx" in interrupted["files"] and "audit.json" not in interrupted["files"]


def test_ingest_keeps_an_incomplete_run_and_its_error(recorded_run, tmp_path):
    _, out, _ = recorded_run
    crashed = tmp_path / "crashed"
    shutil.copytree(out, crashed)
    (crashed / "audit.json").unlink()
    store = Store(tmp_path / "runs.duckdb")
    recorder(store)("started", crashed, json.loads((crashed / "run.json").read_text()))
    recorder(store)("failed", crashed, {"error": "RuntimeError: out of memory"})
    assert store.ingest_run(crashed) == (run_id_for(crashed), "incomplete")
    assert store.query("SELECT status, error FROM runs")[1] == [("incomplete", "RuntimeError: out of memory")]
    assert store.query("SELECT seed, status FROM systems ORDER BY seed")[1] == [(0, "trained"), (1, "trained")]
    # Never recorded before: ingest says why it is incomplete.
    other = Store(tmp_path / "other.duckdb")
    other.ingest_run(crashed)
    assert "training finished but the audit did not" in other.query("SELECT error FROM runs")[1][0][0]


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    import duckdb

    files = {}
    garbage = tmp_path / "garbage" / "runs.duckdb"
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is a spreadsheet, honest\n" * 50)
    files["not a DuckDB database"] = garbage
    foreign = tmp_path / "foreign" / "runs.duckdb"
    foreign.parent.mkdir()
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE invoices (id INTEGER, amount DOUBLE)")
    con.execute("INSERT INTO invoices VALUES (1, 9.5)")
    con.close()
    files["not a mesascope store"] = foreign
    corrupt = tmp_path / "corrupt" / "runs.duckdb"
    corrupt.parent.mkdir()
    raw = bytearray(foreign.read_bytes())
    raw[4096:] = bytes(range(256)) * ((len(raw) - 4096) // 256) + bytes((len(raw) - 4096) % 256)
    corrupt.write_bytes(bytes(raw))  # the DuckDB magic survives, the headers do not
    files["cannot be read"] = corrupt
    empty = tmp_path / "empty" / "runs.duckdb"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    files["empty file"] = empty
    return files


def test_foreign_or_corrupt_store_files_are_refused_and_left_untouched(recorded_run, tmp_path, capsys):
    _, run_dir, _ = recorded_run
    for needle, path in _bad_files(tmp_path).items():
        before = path.read_bytes()
        siblings = sorted(p.name for p in path.parent.iterdir())
        commands = [
            ["runs", "--db", str(path)],
            ["query", "SELECT 1", "--db", str(path)],
            ["ingest", str(run_dir), "--db", str(path)],
            # refused before any training starts (nothing is written into the run folder)
            ["run", "cheese-corner-v0", "--seeds", "1", "--out", str(path.parent / "new-run"), "--db", str(path)],
        ]
        for argv in commands:
            assert main(argv) == 2, (needle, argv)
            err = capsys.readouterr().err.strip()
            assert err.startswith("error: ") and needle in err and "left untouched" in err, err
            assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert path.read_bytes() == before, needle
        assert not (path.parent / "new-run").exists()
        # Nothing beside it either, apart from the advisory lock file (no WAL, no replacement).
        assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == siblings


def test_migrations_are_versioned_and_a_newer_store_is_refused(tmp_path, monkeypatch):
    store = Store(tmp_path / "runs.duckdb")
    with store.write():
        pass
    assert store.query("SELECT version FROM schema_version ORDER BY version")[1] == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    # A later mesascope adds migration N+1: an existing store is upgraded in place, once.
    extra = Migration(SCHEMA_VERSION + 1, "a note per run", ("ALTER TABLE runs ADD COLUMN note VARCHAR",))
    monkeypatch.setattr(store_mod, "MIGRATIONS", (*store_mod.MIGRATIONS, extra))
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    cols, _ = store.query("SELECT * FROM runs")
    assert "note" in cols
    assert store.query("SELECT max(version), count(*) FROM schema_version")[1] == [(SCHEMA_VERSION + 1, SCHEMA_VERSION + 1)]
    # This mesascope (without that migration) refuses the upgraded store instead of misreading it.
    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:-1])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION)
    before = store.path.read_bytes()
    with pytest.raises(StoreError, match="newer than this mesascope knows"):
        store.query("SELECT 1")
    assert store.path.read_bytes() == before


WRITER = """
import sys
from pathlib import Path
from mesascope.experiments.store import Store, recorder
store = Store(sys.argv[1])
for folder in sys.argv[2:]:
    events = recorder(store)
    meta = {"scenario": "cheese-corner-v0", "seeds": [0, 1], "preset": "fast"}
    if folder.endswith("-live"):  # the live path a running `mesascope run` takes
        events("started", Path(folder), meta)
        events("trained", Path(folder), meta)
        events("failed", Path(folder), {"error": "stopped"})
    else:
        store.ingest_run(Path(folder))
"""


def test_concurrent_writer_processes_lose_no_rows(recorded_run, tmp_path):
    _, run_dir, _ = recorded_run
    n_proc, per_proc = 4, 6
    folders = []
    for p in range(n_proc):
        mine = []
        for k in range(per_proc):
            dest = tmp_path / f"w{p}-r{k}" if k % 3 else tmp_path / f"w{p}-r{k}-live"
            shutil.copytree(run_dir, dest)
            mine.append(str(dest))
        folders.append(mine)
    db = tmp_path / "runs.duckdb"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), *mine], stderr=subprocess.PIPE) for mine in folders]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    store = Store(db)
    n_runs = n_proc * per_proc
    n_ingested = sum(1 for mine in folders for f in mine if not f.endswith("-live"))
    assert store.query("SELECT count(*), count(DISTINCT run_id) FROM runs")[1] == [(n_runs, n_runs)]
    assert store.query("SELECT count(*) FROM runs WHERE status = 'incomplete' AND error = 'stopped'")[1] == [(n_runs - n_ingested,)]
    per_run = len(Store(db).query("SELECT * FROM scores WHERE run_id = ?", [run_id_for(folders[0][1])])[1])
    assert per_run > 0
    assert store.query("SELECT count(*) FROM scores")[1] == [(n_ingested * per_run,)]
    assert store.query("SELECT count(DISTINCT run_id) FROM systems")[1] == [(n_runs,)]
    # And `mesascope ingest` of the whole tree afterwards finds every folder once.
    found = ingest_tree(store, tmp_path)
    assert len(found) == n_runs and store.query("SELECT count(*) FROM runs")[1] == [(n_runs,)]


HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # another program keeps the store open for writing
print("open", flush=True)
sys.stdin.read()
"""


def test_a_store_held_open_by_another_program_is_waited_for_then_reported(tmp_path, capsys):
    store = Store(tmp_path / "runs.duckdb", lock_timeout=1.0)
    with store.write():
        pass
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="held open by another program for 1 s"):
            store.query("SELECT count(*) FROM runs")
    finally:
        holder.communicate("", timeout=60)
    assert store.query("SELECT count(*) FROM runs")[1] == [(0,)]  # usable again once it is closed
