"""The default store: per-minute aggregates in an embedded SQLite database.

One writer connection (WAL journal, ``synchronous=NORMAL``) writes each batch in a single
transaction; every reading thread gets its own connection, so reads never wait for ingest
(datasette's ``database.py`` does the same).  Only parameterised SQL touches data; table and
column names come from ``_schema``.

Rows are kept per minute and rolled up as they are written into 10-minute and hour rows
(``_schema``), so a window of any length reads few rows.  A window query sums counters in SQL
and leaves histograms, sets and lists to load lazily, one key at a time, on first use
(``_lazy``): a blast-radius report looks at those of one or two keys, not at the thousands in
an hour, and that is what keeps it fast.  Those lazy loads run after the read's transaction, so
they can see later writes (a known defect, to be replaced by reads loaded whole in one snapshot).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from podtrace_collector.aggregate.stats import Aggregates, RevisionStats, WorkloadRev
from podtrace_collector.errors import ConfigError
from podtrace_collector.store import _lazy, _rows
from podtrace_collector.store import _schema as s

_MMAP_BYTES = 1 << 30
# Lazy loads of one column by key before a read loads that column for every key at once.
_BATCH_AFTER = 16


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
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the store {self.path!r}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._create_schema()
        except (sqlite3.Error, ConfigError) as exc:
            self._db.close()
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"cannot open the store {self.path!r}: {exc}") from exc
        _register_functions(self._db)
        self._upserts = {t.name: s.upsert_sql(t) for t in s.BUCKET_TABLES}
        self._registry_upsert = s.upsert_sql(s.REGISTRY, bucketed=False)

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        """Merge minutes into every tier (and the registry) in one transaction."""
        minutes = _rows.encode(buckets)
        if not minutes["totals"]:
            return
        tiers = [(s.MINUTE, minutes)]
        tiers += [(span, _coarse_rows(buckets, minutes, span)) for span in s.TIERS[1:]]
        with self._transaction() as db:
            for span, rows in tiers:
                for name, table_rows in rows.items():
                    db.executemany(self._upserts[name], [(span, *r) for r in table_rows])
            db.executemany(self._registry_upsert, _rows.registry_rows(minutes))

    def read(
        self,
        start_s: float | None = None,
        end_s: float | None = None,
        *,
        origin: WorkloadRev | None = None,
    ) -> Aggregates:
        """All minutes overlapping ``[start_s, end_s)`` merged into one ``Aggregates``.

        ``origin``: only that workload-revision's keys in the maps keyed by an origin
        (``impacts``, ``entry_impacts``, ``absorbed``, ``origins``).  A blast-radius report
        needs no other, and those maps are most of an hour's rows.
        """
        window = s.window_params(start_s, end_s)
        db = self._reader()
        db.execute("BEGIN")  # one snapshot for every table of the window
        try:
            return _rows.decode(db, window, self._fetch(window), origin)
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
        """Delete the minutes that end at or before ``before_s``; returns how many minutes.

        Coarse buckets wholly before the horizon go too; the one that straddles it in each tier
        is rebuilt from its remaining minutes, so every tier keeps agreeing with the minutes.
        """
        with self._transaction() as db:
            deleted = db.execute(
                "DELETE FROM totals WHERE span_s = ? AND bucket <= ?",
                (s.MINUTE, before_s - s.MINUTE),
            ).rowcount
            for t in s.BUCKET_TABLES:
                for span in s.TIERS:
                    db.execute(
                        f"DELETE FROM {t.name} WHERE span_s = ? AND bucket <= ?",
                        (span, before_s - span),
                    )
                for span in s.TIERS[1:]:
                    start = int(before_s // span * span)
                    if start <= before_s - s.MINUTE:  # it lost minutes: rebuild it
                        self._rebuild(db, t, span, start)
            for stmt in _rows.REGISTRY_PRUNE:
                db.execute(stmt)
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
            # Readers live on pool threads that come and go: share the OS page cache through
            # mmap rather than warm a private page cache per connection; GROUP BY in memory.
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            conn.execute("PRAGMA temp_store=MEMORY")
            with self._lock:
                self._readers.append(conn)
        return conn

    def _fetch(self, window: tuple[int, ...]) -> _lazy.Fetch:
        """One read's loader of JSON columns: key by key, then all keys of a column at once.

        A report touches a few keys (one key's rows: one index lookup), but the graph touches
        every edge and revision: past ``_BATCH_AFTER`` keys of one column, one scan of the
        window loads that column for every key (~6x cheaper than 150 lookups).
        """
        loads: dict[tuple[str, str], int] = {}
        batches: dict[tuple[str, str], dict[tuple[str, ...], list[str]]] = {}

        def fetch(table: s.Table, column: str, key: tuple[str, ...]) -> list[str]:
            which = (table.name, column)
            batch = batches.get(which)
            if batch is None and loads.get(which, 0) >= _BATCH_AFTER:
                batch = batches[which] = self._fetch_all(table, column, window)
            if batch is not None:
                return batch.get(key, [])
            loads[which] = loads.get(which, 0) + 1
            sql = s.column_sql(table, column)
            return [r[0] for r in self._reader().execute(sql, (*key, *window))]

        return fetch

    def _fetch_all(
        self, table: s.Table, column: str, window: tuple[int, ...]
    ) -> dict[tuple[str, ...], list[str]]:
        out: dict[tuple[str, ...], list[str]] = {}
        for *key, value in self._reader().execute(s.column_all_sql(table, column), window):
            out.setdefault(tuple(key), []).append(value)
        return out

    def _rebuild(self, db: sqlite3.Connection, t: s.Table, span: int, start: int) -> None:
        db.execute(f"DELETE FROM {t.name} WHERE span_s = ? AND bucket = ?", (span, start))
        db.execute(s.rollup_sql(t), (span, start, start, start + span))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _create_schema(self) -> None:
        with self._transaction() as db:
            for stmt in s.create_statements():
                db.execute(stmt)
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (s.SCHEMA_VERSION,))
            elif row[0] != s.SCHEMA_VERSION:
                raise ConfigError(
                    f"the store {self.path!r} has schema version {row[0]};"
                    f" this podtrace reads version {s.SCHEMA_VERSION}"
                )


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
    return {start: aggs[0] if len(aggs) == 1 else _merged(aggs) for start, aggs in groups.items()}


def _merged(aggs: list[Aggregates]) -> Aggregates:
    out = Aggregates()
    for a in aggs:
        out.merge(a)
    return out


def _register_functions(db: sqlite3.Connection) -> None:
    """The merge functions the upserts and roll-ups call for JSON columns."""
    db.create_function("pt_hist_merge", 2, _hist_merge, deterministic=True)
    db.create_function("pt_set_union", 2, _set_union, deterministic=True)
    db.create_function("pt_list_concat", 2, _list_concat, deterministic=True)
    # typeshed's aggregate protocol wants int results; SQLite takes any value.
    db.create_aggregate("pt_hist_agg", 1, _HistAgg)  # type: ignore[arg-type]
    db.create_aggregate("pt_set_agg", 1, _SetAgg)  # type: ignore[arg-type]
    db.create_aggregate("pt_list_agg", 1, _ListAgg)  # type: ignore[arg-type]


def _hist_merge(a: str, b: str) -> str:
    return _rows.dump_str_counts(_lazy.merge_counts([a, b]))


def _set_union(a: str, b: str) -> str:
    stored = json.loads(a)
    merged = sorted(_lazy.union_capped([stored, json.loads(b)]))
    # A coarse row's set mostly holds the new minute's users already: when the result is what
    # is stored, keep the stored text rather than re-encoding thousands of names.
    return a if merged == stored else _rows.dump_list(merged)


def _list_concat(a: str, b: str) -> str:
    return _rows.dump_list(_lazy.merge_list([a, b]))


class _JsonAgg:
    """An SQLite aggregate collecting JSON values, merged once at the end."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def step(self, value: Any) -> None:
        self.values.append(str(value))


class _HistAgg(_JsonAgg):
    def finalize(self) -> str:
        return _rows.dump_str_counts(_lazy.merge_counts(self.values))


class _SetAgg(_JsonAgg):
    def finalize(self) -> str:
        return _rows.dump_list(sorted(_lazy.merge_set(self.values)))


class _ListAgg(_JsonAgg):
    def finalize(self) -> str:
        return _rows.dump_list(_lazy.merge_list(self.values))
