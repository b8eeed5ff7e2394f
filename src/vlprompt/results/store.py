"""The results store: one SQLite file with one record per (run, evaluation target).

Why SQLite: a grid of hundreds of runs needs a file that several processes may write at
once (a grid and its resumption, shards on one machine) and that survives a kill at any
moment. The file is opened in WAL mode with a busy timeout; every run's records are
inserted in one `BEGIN IMMEDIATE` transaction, so a run is either fully stored or not at
all, and `(run_hash, target)` is unique, so a record is never stored twice. A run whose
hash is stored is skipped by the protocol runner. WAL needs a local file system (not NFS);
shards on other machines write their own files, merged with `merge_from`.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import UserError
from ..utils.io import atomic_write_text

SCHEMA_VERSION = 1
#: Columns of a record, in CSV order; JSON columns end in `_json`.
COLUMNS: tuple[str, ...] = (
    "run_hash", "target", "protocol", "method", "backbone", "backbone_checksum", "dataset", "classes",
    "shots", "seed", "epochs", "target_dataset", "target_classes", "top1", "top5", "mean_per_class",
    "n_test", "per_class_json", "metrics_json", "config_json", "versions_json", "git_commit",
    "seconds_fit", "seconds_eval", "seconds_total", "peak_rss_mb", "peak_gpu_mb", "run_dir", "host",
    "created_at",
)
_TYPES = {"shots": "INTEGER", "seed": "INTEGER", "epochs": "INTEGER", "n_test": "INTEGER",
          "top1": "REAL", "top5": "REAL", "mean_per_class": "REAL", "seconds_fit": "REAL",
          "seconds_eval": "REAL", "seconds_total": "REAL", "peak_rss_mb": "REAL", "peak_gpu_mb": "REAL",
          "created_at": "REAL"}
_REQUIRED = ("run_hash", "target", "protocol", "method", "backbone", "dataset", "top1")
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, "
    + ", ".join(f"{c} {_TYPES.get(c, 'TEXT')}" + (" NOT NULL" if c in _REQUIRED else "") for c in COLUMNS)
    + ", UNIQUE (run_hash, target))",
    "CREATE INDEX IF NOT EXISTS records_protocol ON records (protocol, method, dataset)",
    "CREATE TABLE IF NOT EXISTS failures (run_hash TEXT PRIMARY KEY, spec_json TEXT, error TEXT, "
    "attempts INTEGER NOT NULL DEFAULT 1, updated_at REAL)",
    "CREATE TABLE IF NOT EXISTS analyses (kind TEXT NOT NULL, key TEXT NOT NULL, data_json TEXT NOT NULL, "
    "created_at REAL, PRIMARY KEY (kind, key))",
]


class StoreError(UserError):
    """The results file cannot be opened or is not a vlprompt results store."""


class ResultStore:
    """A connection to one results file; see the module docstring. Use as a context manager."""

    def __init__(self, path: str | Path, *, timeout: float = 120.0, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"results database {self.path} does not exist")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._setup(timeout)
        except sqlite3.DatabaseError as exc:
            raise StoreError(store_error_message(self.path, exc)) from None
        version = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None or int(version[0]) > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has results schema {version and version[0]}, newer than this "
                             f"vlprompt ({SCHEMA_VERSION}); upgrade vlprompt")

    def _setup(self, timeout: float) -> None:
        """WAL mode and the schema. Two processes opening a new file at once can get "database
        is locked" from the journal-mode switch without SQLite's busy handler being asked, so
        the setup is retried until `timeout`."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
                with self.transaction():
                    for statement in _SCHEMA:
                        self.conn.execute(statement)
                    self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                      (str(SCHEMA_VERSION),))
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # ------------------------------------------------------------------ plumbing
    def transaction(self):
        """`with store.transaction():` an immediate (write-locking) transaction."""
        return _Transaction(self.conn, self.path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ runs
    def completed_runs(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT DISTINCT run_hash FROM records")}

    def has_run(self, run_hash: str) -> bool:
        return self.conn.execute("SELECT 1 FROM records WHERE run_hash = ? LIMIT 1", (run_hash,)).fetchone() is not None

    def add_run(self, records: Sequence[dict]) -> int:
        """Store all records of one run atomically; returns how many were new."""
        rows = [_row(r) for r in records]
        sql = f"INSERT OR IGNORE INTO records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(sql, rows)
            added = self.conn.total_changes - before
            hashes = {r["run_hash"] for r in records}
            self.conn.executemany("DELETE FROM failures WHERE run_hash = ?", [(h,) for h in hashes])
        return added

    def add_failure(self, run_hash: str, spec: dict, error: str) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO failures (run_hash, spec_json, error, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_hash) DO UPDATE SET error = excluded.error, attempts = attempts + 1, "
                "updated_at = excluded.updated_at", (run_hash, json.dumps(spec, sort_keys=True), error, time.time()))

    def failures(self) -> list[dict]:
        cur = self.conn.execute("SELECT run_hash, spec_json, error, attempts FROM failures ORDER BY updated_at")
        return [{"run_hash": h, "spec": json.loads(s), "error": e, "attempts": a} for h, s, e, a in cur]

    def records(self, protocol: str | None = None, decode: bool = True) -> list[dict]:
        """Every record (of one protocol), oldest first; `_json` columns decoded unless `decode=False`."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM records"
        args: tuple = ()
        if protocol is not None:
            sql += " WHERE protocol = ?"
            args = (protocol,)
        cur = self.conn.execute(sql + " ORDER BY id", args)
        out = [dict(zip(COLUMNS, row, strict=True)) for row in cur]
        return [decode_record(r) for r in out] if decode else out

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    # ------------------------------------------------------------------ analyses
    def put_analysis(self, kind: str, key: str, data: dict) -> None:
        """Store (or replace) one analysis result, e.g. ("variance", "<backbone>|<dataset>")."""
        with self.transaction():
            self.conn.execute("INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?)",
                              (kind, key, json.dumps(data, sort_keys=True), time.time()))

    def analyses(self, kind: str | None = None) -> list[dict]:
        sql, args = "SELECT kind, key, data_json FROM analyses", ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (kind,)
        return [{"kind": k, "key": key, **json.loads(d)} for k, key, d in self.conn.execute(sql + " ORDER BY key", args)]

    # ------------------------------------------------------------------ merge and export
    def merge_from(self, other: str | Path) -> int:
        """Copy records and analyses of another store (a shard) that this one lacks."""
        other = Path(other)
        if not other.is_file():
            raise StoreError(f"results database {other} does not exist")
        if other.resolve() == self.path.resolve():
            return 0
        ResultStore(other, create=False).close()  # validates the schema
        cols = ", ".join(COLUMNS)
        self.conn.execute("ATTACH DATABASE ? AS shard", (str(other),))
        try:
            with self.transaction():
                before = self.conn.total_changes
                self.conn.execute(f"INSERT OR IGNORE INTO records ({cols}) SELECT {cols} FROM shard.records ORDER BY id")
                added = self.conn.total_changes - before
                self.conn.execute("INSERT OR IGNORE INTO analyses SELECT * FROM shard.analyses")
        finally:
            self.conn.execute("DETACH DATABASE shard")
        return added

    def export_csv(self, path: str | Path) -> Path:
        """All records as CSV (JSON columns kept as JSON text)."""
        import io

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(COLUMNS)
        for rec in self.records(decode=False):
            writer.writerow(["" if rec[c] is None else rec[c] for c in COLUMNS])
        atomic_write_text(path, buf.getvalue())
        return Path(path)

    def export_json(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.records(), indent=1, sort_keys=True) + "\n")
        return Path(path)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (retried while busy)."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None):
        self.conn = conn
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        for attempt in range(50):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return self.conn
            except sqlite3.OperationalError as exc:  # busy beyond the timeout: back off and retry
                if "locked" not in str(exc) or attempt == 49:
                    raise StoreError(store_error_message(self.path, exc)) from None
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        except sqlite3.OperationalError as failure:
            if exc_type is None:
                raise StoreError(store_error_message(self.path, failure)) from None
        if exc_type is not None and issubclass(exc_type, sqlite3.OperationalError):
            raise StoreError(store_error_message(self.path, exc)) from None


def store_error_message(path: Path | None, exc: Exception) -> str:
    """One line for an SQLite failure: a full disk, a folder that cannot be written, a lock, or a foreign file."""
    text = str(exc)
    where = path if path is not None else "the results database"
    if "full" in text or "disk I/O" in text:
        return (f"cannot write {where}: the disk is full ({text}); free space there, or put the database "
                "on another disk (--db)")
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return (f"cannot write {where} ({text}); choose a folder you can write to (--db/--out) "
                "or change its permissions")
    if "locked" in text or "busy" in text:
        return (f"{where} stayed locked by another process ({text}); wait for it to finish "
                "or use another --db")
    return f"{where} is not a usable results database ({text})"


def _row(record: dict) -> tuple:
    missing = [c for c in _REQUIRED if record.get(c) is None]
    if missing:
        raise ValueError(f"record lacks {', '.join(missing)}")
    unknown = set(record) - set(COLUMNS) - {c[:-5] for c in COLUMNS if c.endswith("_json")}
    if unknown:
        raise ValueError(f"unknown record fields {sorted(unknown)}")
    values = []
    for col in COLUMNS:
        if col.endswith("_json"):
            value = record.get(col, record.get(col[:-5]))
            values.append(value if value is None or isinstance(value, str) else json.dumps(value, sort_keys=True))
        else:
            values.append(record.get(col))
    return tuple(values)


def decode_record(record: dict) -> dict:
    """`x_json` text columns -> `x` Python values."""
    out = {}
    for key, value in record.items():
        if key.endswith("_json"):
            out[key[:-5]] = json.loads(value) if value else None
        else:
            out[key] = value
    return out


def load_records(paths: Iterable[str | Path], protocol: str | None = None) -> list[dict]:
    """Records of several stores (shards), each (run_hash, target) once."""
    seen: set[tuple[str, str]] = set()
    out = []
    for path in paths:
        with ResultStore(path, create=False) as store:
            for rec in store.records(protocol):
                key = (rec["run_hash"], rec["target"])
                if key not in seen:
                    seen.add(key)
                    out.append(rec)
    return out


def load_analyses(paths: Iterable[str | Path], kind: str | None = None) -> list[dict]:
    """Analyses of several stores, each (kind, key) once (first store wins)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for path in paths:
        with ResultStore(path, create=False) as store:
            for item in store.analyses(kind):
                if (item["kind"], item["key"]) not in seen:
                    seen.add((item["kind"], item["key"]))
                    out.append(item)
    return out
