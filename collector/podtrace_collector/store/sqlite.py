"""The default store: per-minute aggregates in an embedded SQLite database.

One writer connection (WAL journal, ``synchronous=NORMAL``) writes each batch in a single
transaction; every reading thread gets its own connection, so reads never wait for ingest
(datasette's ``database.py`` does the same).  Only parameterised SQL touches data; table and
column names come from ``_schema``, which derives them from the aggregate declarations.

Rows are kept per minute and rolled up into 10-minute and hour rows once their bucket is over
(``_rollup``), so a window of any length reads few rows.  A read runs in one transaction on the
reader's connection: the registry, then every window the plan asks for, counters summed in SQL,
histograms, sets and lists merged in Python for the keys the window asks for (one origin's and
two revisions' for a blast-radius report, not the thousands of an hour), so what it returns is
plain data of one snapshot.  Pruning deletes old buckets in short transactions, one bucket at a
time, so writes interleave with it and a shutdown can stop it between two.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.errors import ConfigError, StoreError
from podtrace_collector.store import _rollup, _rows, _sqlfuncs
from podtrace_collector.store import _schema as s
from podtrace_collector.store.base import P, Registry, Snapshot, Window

logger = logging.getLogger(__name__)

_MMAP_BYTES = 1 << 30
# The coarse rows built after a write in one call, in seconds; what is left waits for the next.
_BUILD_BUDGET_S = 0.25
# A read of at most this many keys of a table asks for each key by the index; more, one scan.
_KEYED_READS = 16
_REGISTRY_SQL = (
    f"SELECT {', '.join([*s.REGISTRY.keys, *(c for c, _ in s.REGISTRY.values)])}"
    f" FROM {s.REGISTRY.name}"
)
# Errors that a retry can cure (a lock, a full disk, I/O); anything else is in the data.
_TRANSIENT = (sqlite3.OperationalError,)


class SqliteStore:
    """Aggregates per minute in a SQLite file; survives restarts.

    Args:
        path: the database file; created with its schema when missing.

    Raises:
        ConfigError: the file cannot be opened, written or read back (corrupt), or was written
            by an incompatible version.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        _check_writable(self.path)
        try:
            self._db = self._connect()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the store {self.path!r}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            _check_integrity(self._db, self.path)
            self._create_schema()
        except (sqlite3.Error, ConfigError) as exc:
            self._db.close()
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"cannot open the store {self.path!r}: {exc}") from exc
        _sqlfuncs.register(self._db)
        self._upserts = {t.name: s.upsert_sql(t) for t in s.BUCKET_TABLES}
        self._registry_upsert = s.upsert_sql(s.REGISTRY, bucketed=False)

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        """Merge minutes into their minute rows, the coarse rows already built and the registry
        in one transaction; then build the coarse rows of buckets that are over (``_rollup``).

        Raises:
            StoreError: the write failed and nothing of it was kept; ``transient`` tells whether
                a retry can succeed (a lock, a full disk) or the data itself is the cause.
        """
        try:
            minutes = _rows.encode(buckets)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StoreError(f"cannot encode the batch: {exc}", transient=False) from exc
        if not any(minutes.values()):
            return
        with self._transaction() as db:
            marks = _rollup.built(db)
            tiers = [(s.MINUTE, minutes)]
            tiers += [(span, _late_rows(buckets, minutes, span, marks)) for span in _rollup.COARSE]
            for span, rows in tiers:
                for name, table_rows in rows.items():
                    db.executemany(self._upserts[name], [(span, *r) for r in table_rows])
            db.executemany(self._registry_upsert, _rows.registry_rows(minutes))
        self._build(max(buckets) + s.MINUTE)

    def read(self, plan: Callable[[Registry], P]) -> Snapshot[P]:
        """The registry and the planned windows, in one read transaction (one snapshot)."""
        db = self._reader()
        db.execute("BEGIN")
        try:
            registry = dict(_rows.registry_stats(r) for r in db.execute(_REGISTRY_SQL))
            made = plan(registry)  # type: ignore[arg-type]
            marks = _rollup.built(db)
            windows = [self._window(db, w, marks) for w in made.windows]
        finally:
            db.execute("COMMIT")
        return Snapshot(registry, made, windows)  # type: ignore[arg-type]

    def prune(self, before_s: float, *, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Delete the minutes that end at or before ``before_s``; returns how many minutes.

        Coarse buckets wholly before the horizon go too; the one that straddles it in each tier
        is rebuilt from its remaining minutes, so every tier keeps agreeing with the minutes.
        One bucket per transaction; ``should_stop`` is asked between them (a shutdown): a prune
        stopped early returns 0 and finishes at the next call.
        """
        minutes = len(self._old_buckets(s.BY_NAME["totals"], s.MINUTE, before_s - s.MINUTE))
        for t in s.BUCKET_TABLES:
            for span in s.TIERS:
                for bucket in self._old_buckets(t, span, before_s - span):
                    if should_stop():
                        return 0
                    with self._transaction() as db:
                        db.execute(
                            f"DELETE FROM {t.name} WHERE span_s = ? AND bucket = ?", (span, bucket)
                        )
            for span in _rollup.COARSE:
                start = int(before_s // span * span)
                if start <= before_s - s.MINUTE:  # it lost minutes: rebuild it (if built)
                    with self._transaction() as db:
                        if start < _rollup.built(db)[(t.name, span)]:
                            self._rebuild(db, t, span, start)
        if should_stop():
            return 0
        with self._transaction() as db:
            everything = s.window_params(None, None, _built_of(_rollup.built(db), "revisions"))
            for stmt in _REGISTRY_PRUNE:
                db.execute(stmt, everything)
        return minutes

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
            # Readers live on pool threads that come and go: share the OS page cache through
            # mmap rather than warm a private page cache per connection; GROUP BY in memory.
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            conn.execute("PRAGMA temp_store=MEMORY")
            with self._lock:
                self._readers.append(conn)
        return conn

    def _window(self, db: sqlite3.Connection, window: Window, marks: _rollup.Built) -> Aggregates:
        agg = Aggregates()
        for t in s.BUCKET_TABLES:
            if window.maps is not None and t.name not in window.maps:
                continue
            assert t.spec is not None
            params = s.window_params(window.start_s, window.end_s, _built_of(marks, t.name))
            keys = window.origins if t.spec.origin else None
            out: dict[tuple[str, ...], Any] = getattr(agg, t.name)
            n = len(t.keys)
            for row in _select(db, t, s.scalars_sql, keys, params):
                out[tuple(row[:n])] = _rows.new_stats(t, row[n:])
            details = keys if keys is not None else (window.details if t.spec.detail else None)
            if t.heavy and out and (details is None or details):
                for key, values in _heavy(db, t, details, params):
                    if key in out:
                        _rows.load_heavy(t, out[key], values)
        return agg

    def _build(self, newest_end: int) -> None:
        """Build the coarse rows of buckets that are over, one table and tier per transaction,
        for at most about ``_BUILD_BUDGET_S`` (the rest at the next write).  A failure is logged
        and left for the next write: the minutes are written, and reads use them meanwhile."""
        started = time.monotonic()
        try:
            with self._lock:
                pending = _rollup.due(_rollup.built(self._db), newest_end)
            for table, span in pending:
                if time.monotonic() - started > _BUILD_BUDGET_S:
                    return
                with self._transaction() as db:
                    _rollup.build(db, table, span, newest_end)
        except (StoreError, sqlite3.Error) as exc:  # never the write's failure: it is stored
            logger.warning("building coarse rows failed (retried after the next write): %s", exc)

    def _old_buckets(self, t: s.Table, span: int, last: float) -> list[int]:
        rows = self._reader().execute(
            f"SELECT DISTINCT bucket FROM {t.name} WHERE span_s = ? AND bucket <= ?", (span, last)
        )
        return [int(r[0]) for r in rows]

    def _rebuild(self, db: sqlite3.Connection, t: s.Table, span: int, start: int) -> None:
        db.execute(f"DELETE FROM {t.name} WHERE span_s = ? AND bucket = ?", (span, start))
        db.execute(s.rollup_sql(t), (span, start, start, start + span))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error).

        Raises:
            StoreError: SQLite failed (``transient`` for lock, disk and I/O errors).
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    # SQLite may have rolled back already (a full disk does): then ROLLBACK
                    # fails with "no transaction is active" and would hide the real cause.
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                transient = isinstance(exc, _TRANSIENT)
                raise StoreError(f"{self.path}: {exc}", transient=transient) from exc
            except (OverflowError, ValueError, TypeError) as exc:  # a value SQLite cannot hold
                raise StoreError(f"{self.path}: {exc}", transient=False) from exc

    def _create_schema(self) -> None:
        with self._transaction() as db:
            for stmt in s.create_statements():
                db.execute(stmt)
            _add_missing_columns(db)
            _rollup.record_start(db)
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (s.SCHEMA_VERSION,))
            elif row[0] != s.SCHEMA_VERSION:
                raise ConfigError(
                    f"the store {self.path!r} has schema version {row[0]};"
                    f" this podtrace reads version {s.SCHEMA_VERSION}"
                )


# After a prune: forget revisions with no retained row, recount the others over what remains
# (``WINDOW`` over all time: the hours built, then 10 minutes and minutes).  Both statements are
# one pass each: a key lookup per registry row, one GROUP BY of the rows.
_REGISTRY_PRUNE = (
    f"DELETE FROM registry WHERE NOT EXISTS (SELECT 1 FROM revisions AS r WHERE"
    f" r.workload = registry.workload AND r.revision = registry.revision AND {s.WINDOW})",
    "UPDATE registry SET requests = h.requests, errors = h.errors,"
    " origin_errors = h.origin_errors FROM (SELECT workload, revision,"
    " SUM(requests) AS requests, SUM(errors) AS errors, SUM(origin_errors) AS origin_errors"
    f" FROM revisions WHERE {s.WINDOW} GROUP BY workload, revision) AS h"
    " WHERE registry.workload = h.workload AND registry.revision = h.revision",
)


def _select(
    db: sqlite3.Connection,
    t: s.Table,
    sql: Callable[..., str],
    keys: frozenset[tuple[str, str]] | None,
    params: tuple[int, ...],
) -> Iterable[tuple[Any, ...]]:
    """Rows of ``sql(t)`` over the window, only for ``keys`` (first two key columns) if given."""
    if keys is None:
        return db.execute(sql(t), params)
    if len(keys) <= _KEYED_READS:
        query = sql(t, keyed=True)
        return [row for key in sorted(keys) for row in db.execute(query, (*key, *params))]
    return [row for row in db.execute(sql(t), params) if tuple(row[:2]) in keys]


def _heavy(
    db: sqlite3.Connection,
    t: s.Table,
    keys: frozenset[tuple[str, str]] | None,
    params: tuple[int, ...],
) -> Iterator[tuple[tuple[str, ...], list[list[str]]]]:
    """Per key (in key order), its rows of every JSON column, in time order."""
    n, width = len(t.keys), len(t.heavy)
    current: tuple[str, ...] | None = None
    columns: list[list[str]] = []
    for row in _select(db, t, s.heavy_sql, keys, params):
        key = tuple(row[:n])
        if key != current:
            if current is not None:
                yield current, columns
            current, columns = key, [[] for _ in range(width)]
        for i in range(width):
            columns[i].append(row[n + i])
    if current is not None:
        yield current, columns


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """New fields of a declared map arrive as new columns with their defaults."""
    for t in (*s.BUCKET_TABLES, s.REGISTRY):
        present = {r[1] for r in db.execute(f"PRAGMA table_info({t.name})")}
        for col, merge in t.values:
            if col not in present:
                db.execute(f"ALTER TABLE {t.name} ADD COLUMN {s.column_ddl(col, merge)}")


def _check_writable(path: str) -> None:
    """Refuse at start a store that could be opened but never written (a read-only file)."""
    target = path if os.path.exists(path) else os.path.dirname(os.path.abspath(path))
    if os.path.exists(target) and not os.access(target, os.W_OK):
        what = "file" if target == path else "directory"
        raise ConfigError(f"cannot write the store {path!r}: the {what} is not writable")


def _check_integrity(db: sqlite3.Connection, path: str) -> None:
    row = db.execute("PRAGMA quick_check").fetchone()
    if row is None or row[0] != "ok":
        raise ConfigError(f"the store {path!r} is damaged ({row[0] if row else 'no answer'})")


def _built_of(marks: _rollup.Built, table: str) -> dict[int, int]:
    return {span: marks[(table, span)] for span in _rollup.COARSE}


def _late_rows(
    buckets: Mapping[int, Aggregates],
    minutes: dict[str, list[_rows.Row]],
    span: int,
    marks: _rollup.Built,
) -> dict[str, list[_rows.Row]]:
    """The ``span`` rows to merge the batch's minutes into: those of buckets already built."""
    built_to = max(marks[(t.name, span)] for t in s.BUCKET_TABLES)
    late = {b: a for b, a in buckets.items() if b - b % span < built_to}
    if not late:
        return {}
    late_minutes = {name: [r for r in rows if r[0] in late] for name, rows in minutes.items()}
    coarse = _coarse_rows(late, late_minutes, span)
    return {name: [r for r in rows if r[0] < marks[(name, span)]] for name, rows in coarse.items()}


def _coarse_rows(
    buckets: Mapping[int, Aggregates], minutes: dict[str, list[_rows.Row]], span: int
) -> dict[str, list[_rows.Row]]:
    """The rows of the ``span`` tier for a batch whose minute rows are ``minutes``.

    A batch's minutes usually fall into distinct coarse buckets (most batches are one or two
    minutes), and then each coarse row is its minute's row with the bucket changed: re-keying
    those rows saves encoding every histogram and set twice more.
    """
    starts = {b: b - b % span for b in buckets}
    if len(set(starts.values())) < len(starts):  # minutes to merge first
        return _rows.encode(_coarse(buckets, span))
    return {name: [(starts[r[0]], *r[1:]) for r in rows] for name, rows in minutes.items()}


def _coarse(buckets: Mapping[int, Aggregates], span: int) -> dict[int, Aggregates]:
    """The minutes of a batch grouped into ``span`` buckets, merged where several share one."""
    groups: dict[int, list[Aggregates]] = {}
    for bucket, agg in sorted(buckets.items()):
        groups.setdefault(bucket - bucket % span, []).append(agg)
    out: dict[int, Aggregates] = {}
    for start, aggs in groups.items():
        if len(aggs) == 1:
            out[start] = aggs[0]
            continue
        merged = out[start] = Aggregates()
        for a in aggs:
            merged.merge(a)
    return out
