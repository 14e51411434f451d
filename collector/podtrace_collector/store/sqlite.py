"""The default store: per-minute aggregates in an embedded SQLite database.

One writer connection (WAL journal, ``synchronous=NORMAL``) writes each batch in a single
transaction; every reading thread gets its own connection, so queries read a consistent snapshot
and never wait for ingest (datasette's ``database.py`` does the same).  Only parameterised SQL
touches data; table and column names come from ``_schema``.

A window query sums counters in SQL and leaves histograms, sets and lists to load lazily, one key
at a time, on first use (``_lazy``): a blast-radius report looks at those of one or two keys, not
at the thousands in an hour, and that is what keeps it fast.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path

from podtrace_collector.analyse.aggregate import (
    MAX_EXEMPLARS,
    MAX_USERS,
    Aggregates,
    RevisionStats,
    WorkloadRev,
)
from podtrace_collector.errors import ConfigError
from podtrace_collector.store import _lazy, _rows
from podtrace_collector.store import _schema as s
from podtrace_collector.store.base import BUCKET_S

_FAR = 1e18  # a window bound standing for "unbounded"


class SqliteStore:
    """Aggregates per minute in a SQLite file; survives restarts.

    Args:
        path: the database file; created with its schema when missing.

    Raises:
        ConfigError: the file cannot be opened or was written by an incompatible version.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        try:
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._create_schema()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the store {self.path!r}: {exc}") from exc
        _register_functions(self._db)
        self._upserts = {t.name: s.upsert_sql(t) for t in s.BUCKET_TABLES}
        self._registry_upsert = s.upsert_sql(s.REGISTRY, bucketed=False)

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        """Merge aggregates into the stored minutes (and the registry) in one transaction."""
        rows = _rows.encode(buckets)
        if not rows["totals"]:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for name, table_rows in rows.items():
                    if table_rows:
                        self._db.executemany(self._upserts[name], table_rows)
                self._db.executemany(self._registry_upsert, _rows.registry_rows(rows))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self, start_s: float | None = None, end_s: float | None = None) -> Aggregates:
        """All minutes overlapping ``[start_s, end_s)`` merged into one ``Aggregates``."""
        lo = -_FAR if start_s is None else start_s - BUCKET_S
        hi = _FAR if end_s is None else end_s
        db = self._reader()
        db.execute("BEGIN")  # one snapshot for every table of the window
        try:
            return _rows.decode(db, (lo, hi), self._fetch((lo, hi)))
        finally:
            db.execute("COMMIT")

    def revisions(self) -> dict[WorkloadRev, RevisionStats]:
        """The registry: every retained workload-revision, histograms left empty."""
        cols = [c for c, _ in s.REGISTRY.values]
        rows = self._reader().execute(
            f"SELECT workload, revision, {', '.join(cols)} FROM {s.REGISTRY.name}"
        )
        return {
            (r[0], r[1]): _rows.registry_stats(dict(zip(cols, r[2:], strict=True))) for r in rows
        }

    def prune(self, before_s: float) -> int:
        """Delete the minutes that end at or before ``before_s``; returns how many minutes."""
        last = before_s - BUCKET_S
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._db.execute("DELETE FROM totals WHERE bucket <= ?", (last,)).rowcount
                for t in s.BUCKET_TABLES:
                    self._db.execute(f"DELETE FROM {t.name} WHERE bucket <= ?", (last,))
                for stmt in _rows.REGISTRY_PRUNE:
                    self._db.execute(stmt)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return int(deleted)

    def close(self) -> None:
        """Close the writer and every reader connection (checkpointing the WAL)."""
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._db.close()

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are explicit, so a read never holds a lock by accident.
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            with self._lock:
                self._readers.append(conn)
        return conn

    def _fetch(self, window: tuple[float, float]) -> _lazy.Fetch:
        def fetch(table: s.Table, column: str, key: tuple[str, ...]) -> list[str]:
            sql = s.column_sql(table, column)
            return [r[0] for r in self._reader().execute(sql, (*key, *window))]

        return fetch

    def _create_schema(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in s.create_statements():
                self._db.execute(stmt)
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                self._db.execute("INSERT INTO schema_version VALUES (?)", (s.SCHEMA_VERSION,))
            elif row[0] != s.SCHEMA_VERSION:
                raise ConfigError(
                    f"the store {self.path!r} has schema version {row[0]};"
                    f" this podtrace reads version {s.SCHEMA_VERSION}"
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _register_functions(db: sqlite3.Connection) -> None:
    """The merge functions the upserts call for JSON columns."""
    db.create_function("pt_hist_merge", 2, _hist_merge, deterministic=True)
    db.create_function("pt_set_union", 2, _set_union, deterministic=True)
    db.create_function("pt_list_concat", 2, _list_concat, deterministic=True)


def _hist_merge(a: str, b: str) -> str:
    counts: dict[int, int] = {}
    _rows.add_counts(counts, a)
    _rows.add_counts(counts, b)
    return _rows.dump_counts(counts)


def _set_union(a: str, b: str) -> str:
    mine: list[str] = json.loads(a)
    if len(mine) >= MAX_USERS:
        return a
    members = set(mine)
    for x in json.loads(b):
        if len(members) >= MAX_USERS:
            break
        members.add(x)
    return _rows.dump_list(sorted(members))


def _list_concat(a: str, b: str) -> str:
    mine: list[str] = json.loads(a)
    for x in json.loads(b):
        if len(mine) >= MAX_EXEMPLARS:
            break
        if x not in mine:
            mine.append(x)
    return _rows.dump_list(mine)
