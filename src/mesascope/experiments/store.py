"""The result store: every run, system, score, property, verdict and sweep point in one DuckDB file.

The store lives next to the run folders (`runs/runs.duckdb` for run folders under `runs/`); `--db PATH`
or the environment variable `MESASCOPE_DB` put it elsewhere. Run folders stay the source of truth: the
store is an index over them that `mesascope ingest DIR` can always rebuild.

Concurrency: DuckDB lets one process at a time open a database file for writing, so every access here is
a short transaction taken under an advisory file lock (`<db>.lock`, `filelock`), retried until
`lock_timeout`. Sweep workers in several processes (or on several Ray workers of one machine) can
therefore all record their runs without losing rows; nobody holds the database open between writes.

Safety: a file at the store's path that is not a mesascope store (not DuckDB at all, corrupt, or a DuckDB
database with other tables) is refused with a one-line `StoreError` before anything is written, and is
never modified: it is only ever opened read-only until it has been recognised.

Schema versions: `MIGRATIONS` is the ordered list of schema changes; `schema_version` records which
ones a database has. Opening a database applies the missing ones (each in its own transaction); a
database from a newer mesascope (a version this one does not know) is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mesascope.types import MesascopeError, error_line, try_read_json_object

__all__ = [
    "DB_ENV",
    "DB_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "Store",
    "StoreError",
    "proxy_goals",
    "resolve_db",
    "run_id_for",
]

DB_NAME = "runs.duckdb"
DB_ENV = "MESASCOPE_DB"

RUN_STATUSES = ("running", "complete", "incomplete")


class StoreError(MesascopeError):
    """The store cannot be used (foreign or corrupt file, newer schema, locked too long)."""


@dataclass(frozen=True)
class Migration:
    """One numbered schema change, applied once and in order."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, systems, scores, first_reached, properties, verdicts, sweeps, sweep_points",
        (
            """CREATE TABLE runs (
                run_id VARCHAR NOT NULL, path VARCHAR NOT NULL, scenario VARCHAR, scenario_params JSON,
                preset VARCHAR, optimizer VARCHAR, seeds INTEGER[], config JSON, status VARCHAR NOT NULL,
                error VARCHAR, started TIMESTAMP, finished TIMESTAMP, updated TIMESTAMP, sweep_id VARCHAR,
                sweep_point INTEGER, proxy_goal VARCHAR, mesascope_version VARCHAR, audit JSON)""",
            """CREATE TABLE systems (
                run_id VARCHAR NOT NULL, seed INTEGER NOT NULL, status VARCHAR NOT NULL, artifact VARCHAR,
                recorded TIMESTAMP, data JSON)""",
            """CREATE TABLE scores (
                run_id VARCHAR NOT NULL, seed INTEGER, policy VARCHAR NOT NULL, split VARCHAR NOT NULL,
                objective VARCHAR NOT NULL, j DOUBLE, v DOUBLE)""",
            """CREATE TABLE first_reached (
                run_id VARCHAR NOT NULL, seed INTEGER, policy VARCHAR NOT NULL, split VARCHAR NOT NULL,
                goal VARCHAR NOT NULL, probability DOUBLE)""",
            """CREATE TABLE properties (
                run_id VARCHAR NOT NULL, seed INTEGER NOT NULL, property VARCHAR NOT NULL, state VARCHAR,
                score DOUBLE, threshold DOUBLE, school VARCHAR, definition VARCHAR, evidence JSON)""",
            """CREATE TABLE verdicts (
                run_id VARCHAR NOT NULL, seed INTEGER NOT NULL, school VARCHAR NOT NULL, label VARCHAR,
                reason VARCHAR, evidence JSON)""",
            """CREATE TABLE sweeps (
                sweep_id VARCHAR NOT NULL, path VARCHAR NOT NULL, scenario VARCHAR, grid JSON, seeds INTEGER,
                preset VARCHAR, backend VARCHAR, goal VARCHAR, status VARCHAR, started TIMESTAMP,
                updated TIMESTAMP)""",
            """CREATE TABLE sweep_points (
                sweep_id VARCHAR NOT NULL, point INTEGER NOT NULL, run_id VARCHAR, path VARCHAR,
                params JSON, settings JSON, status VARCHAR, error VARCHAR, n_seeds INTEGER, goal VARCHAR,
                j_intended_deploy_mean DOUBLE, j_intended_deploy_sd DOUBLE, j_intended_deploy_min DOUBLE,
                j_intended_deploy_max DOUBLE, goal_first_deploy_mean DOUBLE, goal_first_deploy_sd DOUBLE,
                goal_first_deploy_min DOUBLE, goal_first_deploy_max DOUBLE,
                uniform_goal_first_deploy DOUBLE, updated TIMESTAMP)""",
        ),
    ),
    Migration(
        2,
        "informative-level counts, bootstrap intervals and marginal flags (SPEC.md section 2); thresholds per run",
        (
            "ALTER TABLE runs ADD COLUMN thresholds JSON",
            "ALTER TABLE scores ADD COLUMN n_informative INTEGER",
            "ALTER TABLE scores ADD COLUMN j_lo DOUBLE",
            "ALTER TABLE scores ADD COLUMN j_hi DOUBLE",
            "ALTER TABLE scores ADD COLUMN j_all_levels DOUBLE",
            "ALTER TABLE properties ADD COLUMN marginal BOOLEAN",
            "ALTER TABLE properties ADD COLUMN n_informative INTEGER",
            "ALTER TABLE properties ADD COLUMN interval_lo DOUBLE",
            "ALTER TABLE properties ADD COLUMN interval_hi DOUBLE",
            "ALTER TABLE verdicts ADD COLUMN marginal BOOLEAN",
        ),
    ),
    Migration(
        3,
        "one run protocol: scenario kind and finding per run, the scenarios' own measures, the finding's checks",
        (
            "ALTER TABLE runs ADD COLUMN kind VARCHAR",
            "ALTER TABLE runs ADD COLUMN finding_holds BOOLEAN",
            """CREATE TABLE scenario_measures (
                run_id VARCHAR NOT NULL, seed INTEGER, policy VARCHAR NOT NULL, split VARCHAR NOT NULL,
                measure VARCHAR NOT NULL, value DOUBLE, lo DOUBLE, hi DOUBLE)""",
            """CREATE TABLE finding_checks (
                run_id VARCHAR NOT NULL, position INTEGER NOT NULL, name VARCHAR, measured JSON, expected VARCHAR,
                holds BOOLEAN)""",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version

_RUN_TABLES = ("systems", "scores", "first_reached", "properties", "verdicts", "scenario_measures", "finding_checks")


def resolve_db(db: Path | str | None, runs_folder: Path | str) -> Path:
    """The store's path: `db` if given, else `$MESASCOPE_DB`, else `<runs_folder>/runs.duckdb`."""
    if db:
        return Path(db)
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV])
    return Path(runs_folder) / DB_NAME


def run_id_for(run_dir: Path | str) -> str:
    """A run's id: 10 hex digits of a hash of its folder's absolute path (stable across re-ingests)."""
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:10]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN), tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _json(obj: Any) -> str | None:
    return None if obj is None else json.dumps(_clean(obj), allow_nan=False)


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(float(x)) else None


def proxy_goals(audit: dict[str, Any]) -> list[str]:
    """Candidate goals whose objective differs from the intended objective (the scenario's proxies)."""
    objectives = audit.get("objectives") or {}
    intended = objectives.get("intended")
    return [g for g in audit.get("candidate_goals") or [] if objectives.get(g) != intended]


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class Store:
    """A mesascope result store at `path` (created on the first write if missing).

    Args:
        path: The DuckDB file.
        lock_timeout: Seconds to wait for the file lock (and for a database held by another program).
    """

    def __init__(self, path: Path | str, lock_timeout: float = 300.0):
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    # -- opening -----------------------------------------------------------------------------------

    def _refuse(self, why: str) -> StoreError:
        return StoreError(f"{self.path} {why}; it was left untouched (pass --db or set {DB_ENV} to use another store)")

    def _inspect(self) -> int | None:
        """The schema version of the file at `path` (None if there is no file, 0 if an empty DuckDB).

        Only ever opens the file read-only. Raises `StoreError` for anything that is not a store.
        """
        import duckdb

        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a database file; pass --db PATH/{DB_NAME}")
        if not self.path.exists():
            return None
        with self.path.open("rb") as fh:
            head = fh.read(16)
        if len(head) == 0:
            raise self._refuse("is an empty file, not a mesascope store")
        if head[8:12] != b"DUCK":
            kind = "a SQLite database" if head.startswith(b"SQLite format 3") else "not a DuckDB database"
            raise self._refuse(f"is {kind}, not a mesascope store")
        try:
            con = self._connect(read_only=True)
        except StoreError:
            raise
        except duckdb.Error as err:
            raise self._refuse(f"cannot be read as a DuckDB database (corrupt, or from another DuckDB version): {error_line(err, with_type=False)}") from None
        try:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if "schema_version" not in tables:
                if tables:
                    shown = ", ".join(sorted(tables)[:5])
                    raise self._refuse(f"is a DuckDB database but not a mesascope store (it has tables {shown})")
                return 0
            version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
        except duckdb.Error as err:
            raise self._refuse(f"cannot be read as a mesascope store: {error_line(err, with_type=False)}") from None
        finally:
            con.close()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has store schema version {version}, newer than this mesascope knows "
                f"({SCHEMA_VERSION}); upgrade mesascope to read it"
            )
        return int(version)

    def _connect(self, read_only: bool, sandboxed: bool = False) -> Any:
        """Connect, retrying while another program (not using our lock) holds the file.

        `sandboxed` connections cannot touch other files (no COPY TO, ATTACH or file reads), so a
        user's query cannot write anywhere.
        """
        import duckdb

        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        config = {"enable_external_access": False} if sandboxed else {}
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only, config=config)
            except duckdb.IOException as err:
                if "lock" not in str(err).lower():
                    raise
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"{self.path} has been held open by another program for {self.lock_timeout:.0f} s "
                        "(DuckDB allows one writing process at a time); close it and try again"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path) + ".lock", timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(
                f"{self.path} stayed locked by another mesascope process for {self.lock_timeout:.0f} s; "
                "try again when it has finished"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def check(self) -> int | None:
        """Raise `StoreError` unless the path is free or holds a mesascope store; return its version."""
        if not self.path.exists():
            return None
        with self._locked():
            return self._inspect()

    def _migrate(self, con: Any, version: int) -> None:
        for mig in MIGRATIONS:
            if mig.version <= version:
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                if mig.version == 1:
                    con.execute(
                        "CREATE TABLE schema_version (version INTEGER NOT NULL, description VARCHAR, "
                        "applied TIMESTAMP, mesascope_version VARCHAR)"
                    )
                for stmt in mig.statements:
                    con.execute(stmt)
                from mesascope import __version__

                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?, ?)", [mig.version, mig.description, _now(), __version__]
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def write(self) -> Iterator[Any]:
        """A connection inside one write transaction, under the file lock (committed on success)."""
        import duckdb

        with self._locked():
            version = self._inspect()
            if version is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                con = self._connect(read_only=False)
            except duckdb.Error as err:
                raise StoreError(f"cannot open {self.path} for writing: {error_line(err, with_type=False)}") from None
            try:
                self._migrate(con, version or 0)
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            finally:
                con.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[Any]:
        """A read-only connection (migrating an older store first); `StoreError` if there is none."""
        if not self.path.exists():
            raise StoreError(
                f"no store at {self.path} yet: run `mesascope run` or `mesascope ingest DIR` first, "
                f"or pass --db / set {DB_ENV}"
            )
        with self._locked():
            version = self._inspect()
        if (version or 0) < SCHEMA_VERSION:
            with self.write():
                pass
        with self._locked():
            con = self._connect(read_only=True, sandboxed=True)
            try:
                yield con
            finally:
                con.close()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only SQL query: `(column names, rows)`; SQL errors raise `StoreError`."""
        import duckdb

        with self.read() as con:
            try:
                cur = con.execute(sql, params or [])
                if cur.description is None:
                    return [], []
                return [d[0] for d in cur.description], cur.fetchall()
            except duckdb.Error as err:
                raise StoreError(f"query failed: {error_line(err, with_type=False)}") from None

    # -- writing runs ------------------------------------------------------------------------------

    @staticmethod
    def _delete_run(con: Any, run_id: str) -> None:
        for table in ("runs", *_RUN_TABLES):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])

    @staticmethod
    def _insert_run_row(
        con: Any,
        run_id: str,
        run_dir: Path,
        meta: dict[str, Any],
        status: str,
        error: str | None,
        finished: datetime | None,
        audit: dict[str, Any] | None,
        sweep: tuple[str, int] | None,
    ) -> None:
        goals = proxy_goals(audit) if audit else []
        audit_top = {k: v for k, v in (audit or {}).items() if k != "systems"} if audit else None
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                str(run_dir.resolve()),
                meta.get("scenario"),
                _json(meta.get("scenario_params") or {}),
                meta.get("preset"),
                meta.get("optimizer"),
                [int(s) for s in meta.get("seeds", []) if isinstance(s, int)],
                _json(meta.get("config")),
                status,
                error,
                _parse_time(meta.get("started")),
                finished,
                _now(),
                sweep[0] if sweep else None,
                sweep[1] if sweep else None,
                goals[0] if goals else None,
                meta.get("mesascope_version"),
                _json(audit_top),
                _json((audit or {}).get("thresholds") or meta.get("thresholds")),
                (audit or {}).get("kind") or meta.get("kind") or "gridworld",
                (audit or {}).get("finding", {}).get("holds") if audit else None,
            ],
        )

    @staticmethod
    def _insert_systems(con: Any, run_id: str, run_dir: Path, meta: dict[str, Any], audit: dict[str, Any] | None) -> None:
        con.execute("DELETE FROM systems WHERE run_id = ?", [run_id])
        audited = {s.get("seed"): s for s in (audit or {}).get("systems", []) if isinstance(s, dict)}
        for seed in meta.get("seeds", []):
            files = sorted((run_dir / "systems").glob(f"seed-{seed}.*")) if (run_dir / "systems").is_dir() else []
            entry = audited.get(seed)
            if entry is None and not files:
                continue
            con.execute(
                "INSERT INTO systems VALUES (?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    int(seed),
                    "audited" if entry is not None else "trained",
                    str(files[0].relative_to(run_dir)) if files else None,
                    _now(),
                    _json(entry),
                ],
            )

    @staticmethod
    def _insert_audit_rows(con: Any, run_id: str, audit: dict[str, Any]) -> None:
        for table in ("scores", "first_reached", "properties", "verdicts", "scenario_measures", "finding_checks"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        score_rows, first_rows, prop_rows, verdict_rows, measure_rows = [], [], [], [], []
        check_rows = [[run_id, i, c.get("name"), _json(c.get("measured")), c.get("expected"), bool(c.get("holds"))]
                      for i, c in enumerate((audit.get("finding") or {}).get("checks") or []) if isinstance(c, dict)]

        counts = audit.get("informative_levels") or {}

        def split_get(block: Any, split: str, obj: str) -> Any:
            inner = (block or {}).get(split) if isinstance(block, dict) else None
            return inner.get(obj) if isinstance(inner, dict) else None

        def add_scores(seed: int | None, policy: str, entry: dict[str, Any]) -> None:
            for split, objs in (entry.get("scores") or {}).items():
                if not isinstance(objs, dict):
                    continue
                for obj, j in objs.items():
                    interval = split_get(entry.get("intervals"), split, obj) or [None, None]
                    n = split_get(counts, split, obj)
                    score_rows.append([
                        run_id, seed, policy, split, obj, _num(j), _num(split_get(entry.get("values"), split, obj)),
                        int(n) if isinstance(n, int) else None, _num(interval[0]), _num(interval[1]),
                        _num(split_get(entry.get("scores_all_levels"), split, obj)),
                    ])
            for split, goals in (entry.get("first_reached") or {}).items():
                if not isinstance(goals, dict):
                    continue
                for goal, p in goals.items():
                    first_rows.append([run_id, seed, policy, split, goal, _num(p)])
            for measure, by_split in (entry.get("scenario_measures") or {}).items():
                for split, value in (by_split or {}).items():
                    interval = split_get(entry.get("scenario_measure_intervals"), measure, split) or [None, None]
                    measure_rows.append([run_id, seed, policy, split, measure, _num(value), _num(interval[0]), _num(interval[1])])

        for entry in audit.get("systems") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("seed"), int):
                continue
            seed = entry["seed"]
            add_scores(seed, "system", entry)
            for name, p in (entry.get("properties") or {}).items():
                if not isinstance(p, dict):
                    continue
                interval = p.get("interval") or [None, None]
                n = p.get("n_informative")
                prop_rows.append(
                    [run_id, seed, name, p.get("state"), _num(p.get("score")), _num(p.get("threshold")),
                     p.get("school"), p.get("definition"), _json(p.get("evidence")), bool(p.get("marginal", False)),
                     int(n) if isinstance(n, int) else None, _num(interval[0]), _num(interval[1])]
                )
            for school, v in (entry.get("verdicts") or {}).items():
                if not isinstance(v, dict):
                    continue
                verdict_rows.append([run_id, seed, school, v.get("label"), v.get("reason"), _json(v.get("evidence")),
                                     bool(v.get("marginal", False))])
        for name, base in ((audit.get("baselines") or {}).items()):
            if isinstance(base, dict):
                add_scores(None, name, base)
        for measure, block in (audit.get("scenario_measures") or {}).items():  # level measures: no policy
            for split, value in ((block or {}).get("value") or {}).items():
                interval = ((block.get("interval") or {}).get(split)) or [None, None]
                measure_rows.append([run_id, None, "levels", split, measure, _num(value), _num(interval[0]), _num(interval[1])])
        for table, rows in (
            ("scores", score_rows),
            ("first_reached", first_rows),
            ("properties", prop_rows),
            ("verdicts", verdict_rows),
            ("scenario_measures", measure_rows),
            ("finding_checks", check_rows),
        ):
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    def record_start(self, run_dir: Path, meta: dict[str, Any], sweep: tuple[str, int] | None = None) -> str:
        """A run has started (its run.json is written): replace any old rows of this folder, status running."""
        run_id = run_id_for(run_dir)
        with self.write() as con:
            self._delete_run(con, run_id)
            self._insert_run_row(con, run_id, run_dir, meta, "running", None, None, None, sweep)
        return run_id

    def record_trained(self, run_dir: Path, meta: dict[str, Any]) -> None:
        """The run's systems are trained and saved: one `systems` row each (status trained)."""
        run_id = run_id_for(run_dir)
        with self.write() as con:
            self._insert_systems(con, run_id, run_dir, meta, None)
            con.execute("UPDATE runs SET updated = ? WHERE run_id = ?", [_now(), run_id])

    def record_status(self, run_dir: Path, status: str, error: str | None = None) -> None:
        """Mark a run complete or incomplete (with the error that stopped it)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}")
        with self.write() as con:
            known = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id_for(run_dir)]).fetchone()[0]
        if not known and (Path(run_dir) / "run.json").exists():
            self.ingest_run(Path(run_dir))  # a run that was never recorded as started (e.g. a study)
        with self.write() as con:
            con.execute(
                "UPDATE runs SET status = ?, error = ?, finished = ?, updated = ? WHERE run_id = ?",
                [status, error, _now(), _now(), run_id_for(run_dir)],
            )

    def ingest_run(self, run_dir: Path, sweep: tuple[str, int] | None = None) -> tuple[str, str]:
        """(Re)import one run folder from its files; returns `(run_id, status)`.

        Status: complete when `audit.json` exists, otherwise incomplete (keeping an earlier recorded
        error). Idempotent: the run's old rows are replaced.
        """
        run_dir = Path(run_dir)
        meta = try_read_json_object(run_dir / "run.json")
        if meta is None:
            raise MesascopeError(f"{run_dir} is not a mesascope run folder (no readable run.json)")
        audit = try_read_json_object(run_dir / "audit.json")
        run_id = run_id_for(run_dir)
        with self.write() as con:
            old = con.execute("SELECT status, error, sweep_id, sweep_point FROM runs WHERE run_id = ?", [run_id]).fetchone()
            if sweep is None and old is not None and old[2] is not None:
                sweep = (old[2], old[3])
            if audit is not None:
                status, error = "complete", None
                finished = datetime.fromtimestamp((run_dir / "audit.json").stat().st_mtime, timezone.utc).replace(tzinfo=None)
            else:
                status, finished = "incomplete", None
                trained = (run_dir / "training.npz").exists()
                error = (old[1] if old is not None and old[1] else None) or (
                    "no audit.json: training finished but the audit did not (run `mesascope audit DIR`)"
                    if trained
                    else "no audit.json: training did not finish"
                )
            self._delete_run(con, run_id)
            self._insert_run_row(con, run_id, run_dir, meta, status, error, finished, audit, sweep)
            self._insert_systems(con, run_id, run_dir, meta, audit)
            if audit is not None:
                self._insert_audit_rows(con, run_id, audit)
        return run_id, status

    # -- sweeps ------------------------------------------------------------------------------------

    def record_sweep(self, sweep_id: str, sweep_dir: Path, desc: dict[str, Any], backend: str, status: str) -> None:
        """Insert or update the `sweeps` row of a sweep folder."""
        with self.write() as con:
            old = con.execute("SELECT started FROM sweeps WHERE sweep_id = ?", [sweep_id]).fetchone()
            con.execute("DELETE FROM sweeps WHERE sweep_id = ?", [sweep_id])
            con.execute(
                "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    sweep_id,
                    str(Path(sweep_dir).resolve()),
                    desc.get("scenario"),
                    _json({"params": desc.get("params"), "settings": desc.get("settings")}),
                    desc.get("seeds"),
                    desc.get("preset"),
                    backend,
                    desc.get("goal"),
                    status,
                    old[0] if old else _now(),
                    _now(),
                ],
            )

    def record_sweep_point(self, sweep_id: str, point: dict[str, Any]) -> None:
        """Insert or replace one point of a sweep (its curve numbers, `mesascope.experiments.sweep`)."""
        j = point.get("j_intended_deploy") or {}
        g = point.get("goal_first_deploy") or {}
        with self.write() as con:
            con.execute("DELETE FROM sweep_points WHERE sweep_id = ? AND point = ?", [sweep_id, point["index"]])
            con.execute(
                "INSERT INTO sweep_points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    sweep_id, point["index"], point.get("run_id"), point.get("path"), _json(point.get("params")),
                    _json(point.get("settings")), point.get("status"), point.get("error"), point.get("n_seeds"),
                    point.get("goal"), _num(j.get("mean")), _num(j.get("sd")), _num(j.get("min")), _num(j.get("max")),
                    _num(g.get("mean")), _num(g.get("sd")), _num(g.get("min")), _num(g.get("max")),
                    _num(point.get("uniform_goal_first_deploy")), _now(),
                ],
            )

    # -- reading -----------------------------------------------------------------------------------

    def resolve_run(self, ref: str) -> str:
        """A run id from an id, a unique id prefix, or a run folder path."""
        if Path(ref).is_dir() and (Path(ref) / "run.json").exists():
            ref = run_id_for(ref)
        _, rows = self.query("SELECT run_id FROM runs WHERE run_id LIKE ? ORDER BY run_id", [ref.replace("%", "") + "%"])
        if len(rows) == 1:
            return rows[0][0]
        if not rows:
            raise StoreError(f"no run {ref!r} in {self.path}; `mesascope runs` lists the run ids")
        raise StoreError(f"run id prefix {ref!r} matches {len(rows)} runs; give more characters")


RunEvents = Callable[[str, Path, dict[str, Any]], None]
"""`events(stage, run_dir, data)` with stage in started, trained, audited, complete, failed, ingest."""


def recorder(store: Store, sweep: tuple[str, int] | None = None, warn: Callable[[str], None] | None = None) -> RunEvents:
    """A `run(..., events=...)` callback that records a run in `store` as it goes.

    A store that cannot be written (locked too long, removed, disk full) never stops the run: the
    problem goes to `warn` and `mesascope ingest DIR` can import the folder later.
    """
    state: dict[str, Any] = {}

    def events(stage: str, run_dir: Path, data: dict[str, Any]) -> None:
        try:
            if stage == "started":
                state["meta"] = data
                store.record_start(run_dir, data, sweep)
            elif stage == "trained":
                store.record_trained(run_dir, state.get("meta") or data)
            elif stage == "audited":  # audit.json is on disk: the same import as `mesascope ingest`
                store.ingest_run(run_dir, sweep)
            elif stage == "ingest":
                store.ingest_run(run_dir, sweep)
            elif stage == "complete":
                store.record_status(run_dir, "complete")
            elif stage == "failed":
                store.record_status(run_dir, "incomplete", data.get("error"))
        except Exception as err:  # noqa: BLE001 - the store is an index; the run folder is the record
            if warn is not None:
                warn(f"could not record the run's {stage!r} step in {store.path}: {error_line(err, with_type=False)}; "
                     f"`mesascope ingest {run_dir}` imports it later")

    return events


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _counts(pairs: Sequence[tuple[Any, Any]]) -> dict[Any, dict[str, int]]:
    out: dict[Any, dict[str, int]] = {}
    for key, label in pairs:
        d = out.setdefault(key, {})
        d[str(label)] = d.get(str(label), 0) + 1
    return out


def _label_text(counts: dict[str, int] | None) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(counts.items()))


RUNS_SQL = """
SELECT r.run_id, r.scenario, r.scenario_params, r.preset, len(r.seeds) AS seeds, r.status, r.started,
       avg(s.j) FILTER (WHERE s.policy = 'system' AND s.split = 'train' AND s.objective = 'base') AS train_j_base,
       avg(s.j) FILTER (WHERE s.policy = 'system' AND s.split = 'deploy' AND s.objective = 'intended') AS deploy_j_intended,
       r.proxy_goal,
       (SELECT avg(f.probability) FROM first_reached f WHERE f.run_id = r.run_id AND f.policy = 'system'
          AND f.split = 'deploy' AND f.goal = r.proxy_goal) AS deploy_proxy_first,
       r.path, r.error
FROM runs r LEFT JOIN scores s ON s.run_id = r.run_id
GROUP BY ALL
ORDER BY r.started NULLS LAST, r.run_id
"""


def list_runs(store: Store) -> tuple[list[str], list[tuple[Any, ...]]]:
    """One row per run: id, scenario, params, preset, seeds, status, started and the key mean scores."""
    return store.query(RUNS_SQL)


def compare_runs(store: Store, ref_a: str, ref_b: str) -> dict[str, Any]:
    """What differs between two runs: settings, mean scores per split and objective, verdicts, properties.

    Returns:
        `{"ids": (a, b), "settings": [(field, value_a, value_b)], "scores": [(split, objective, a, b)],
        "first_reached": [(split, goal, a, b)], "verdicts": [(school, labels_a, labels_b)],
        "properties": [(property, states_a, states_b)]}`; settings, verdicts and properties list only
        what differs; scores are means over seeds (the uniform baseline is left out).
    """
    a, b = store.resolve_run(ref_a), store.resolve_run(ref_b)
    cols, rows = store.query(
        "SELECT run_id, path, scenario, scenario_params, preset, optimizer, seeds, config, status, error, started, "
        "proxy_goal FROM runs WHERE run_id IN (?, ?)",
        [a, b],
    )
    by_id = {r[0]: dict(zip(cols, r)) for r in rows}
    flat = []
    for rid in (a, b):
        r = dict(by_id[rid])
        for key in ("scenario_params", "config"):
            r[key] = json.loads(r[key]) if isinstance(r[key], str) else r[key]
        flat.append(_flatten({k: v for k, v in r.items() if k != "run_id"}))
    keys = list(dict.fromkeys([*flat[0], *flat[1]]))
    settings = [(k, flat[0].get(k), flat[1].get(k)) for k in keys if flat[0].get(k) != flat[1].get(k)]

    def means(table: str, col: str, value: str) -> dict[tuple[str, str], dict[str, float]]:
        _, rs = store.query(
            f"SELECT run_id, split, {col}, avg({value}) FROM {table} WHERE run_id IN (?, ?) AND policy = 'system' "
            f"GROUP BY ALL ORDER BY split DESC, {col}",
            [a, b],
        )
        out: dict[tuple[str, str], dict[str, float]] = {}
        for rid, split, name, v in rs:
            out.setdefault((split, name), {})[rid] = v
        return out

    scores = means("scores", "objective", "j")
    first = means("first_reached", "goal", "probability")
    _, vrows = store.query("SELECT run_id, school, label FROM verdicts WHERE run_id IN (?, ?) ORDER BY school", [a, b])
    _, prows = store.query("SELECT run_id, property, state FROM properties WHERE run_id IN (?, ?) ORDER BY property", [a, b])
    verdicts = {rid: _counts([(s, lab) for r, s, lab in vrows if r == rid]) for rid in (a, b)}
    props = {rid: _counts([(p, st) for r, p, st in prows if r == rid]) for rid in (a, b)}
    schools = list(dict.fromkeys(s for _, s, _ in vrows))
    names = list(dict.fromkeys(p for _, p, _ in prows))
    return {
        "ids": (a, b),
        "settings": settings,
        "scores": [(split, obj, v.get(a), v.get(b)) for (split, obj), v in scores.items()],
        "first_reached": [(split, goal, v.get(a), v.get(b)) for (split, goal), v in first.items()],
        "verdicts": [
            (s, _label_text(verdicts[a].get(s)), _label_text(verdicts[b].get(s)))
            for s in schools
            if verdicts[a].get(s) != verdicts[b].get(s)
        ],
        "properties": [
            (p, _label_text(props[a].get(p)), _label_text(props[b].get(p)))
            for p in names
            if props[a].get(p) != props[b].get(p)
        ],
    }


def ingest_tree(store: Store, root: Path) -> list[tuple[Path, str, str]]:
    """(Re)import every run folder under `root` (itself, sweep points, nested folders).

    Returns `(folder, run_id, status)` per run. Sweep folders (`sweep.json`) also get their `sweeps` and
    `sweep_points` rows back, from their points' audits.
    """
    root = Path(root)
    if not root.is_dir():
        raise MesascopeError(f"{root} is not a folder; pass a run folder or a folder of run folders")
    found: list[tuple[Path, str, str]] = []
    run_dirs = sorted({p.parent for p in root.rglob("run.json")} | ({root} if (root / "run.json").exists() else set()))
    sweeps = {p.parent: try_read_json_object(p) for p in sorted(root.rglob("sweep.json"))}
    if (root / "sweep.json").exists():
        sweeps[root] = try_read_json_object(root / "sweep.json")
    member: dict[Path, tuple[str, int]] = {}
    from mesascope.experiments.sweep import point_summary, sweep_id_for

    for sdir, desc in sweeps.items():
        if not desc:
            continue
        for p in desc.get("points", []):
            member[(sdir / p["dir"]).resolve()] = (sweep_id_for(sdir), p["index"])
    for d in run_dirs:
        if ".interrupted-" in d.name:
            continue  # a point's abandoned partial folder, kept only so nothing is ever deleted
        run_id, status = store.ingest_run(d, member.get(d.resolve()))
        found.append((d, run_id, status))
    for sdir, desc in sweeps.items():
        if not desc:
            continue
        sid = sweep_id_for(sdir)
        statuses = []
        for p in desc.get("points", []):
            pdir = sdir / p["dir"]
            audit = try_read_json_object(pdir / "audit.json")
            row = {**p, "path": str(pdir), "run_id": run_id_for(pdir)}
            row.update(point_summary(audit, desc.get("goal"), pdir) if audit else {"status": "incomplete", "goal": desc.get("goal")})
            row.setdefault("status", "complete")
            statuses.append(row["status"])
            store.record_sweep_point(sid, row)
        status = "complete" if statuses and all(s == "complete" for s in statuses) else "incomplete"
        store.record_sweep(sid, sdir, desc, "ingested", status)
    if not found:
        raise MesascopeError(f"no run folders (with run.json) under {root}")
    return found
