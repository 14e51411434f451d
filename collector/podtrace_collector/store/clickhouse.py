"""The scale-out store: per-minute aggregates of a fleet of gateways in one ClickHouse database.

``clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE`` reaches a server through the official
client (clickhouse-connect, ``pip install 'podtrace[clickhouse]'``); ``chdb://PATH`` runs the
same engine in-process (chDB, ``podtrace[chdb]``, through the same client and the same SQL).
The tables are derived from the aggregate declarations (``_chschema``) and created, or given
their missing columns, when the store opens.

**Writes** are insert-only: a write is one INSERT of its minutes into a Null table whose
materialized view adds the 10-minute, hour and day rows and inserts everything into
``aggregates`` as one block, hence one part. The engine merges rows of a key and bucket from
every write and gateway in the background; no read depends on how far it got (reads merge with
the same functions, never ``FINAL``). Each write carries an insert deduplication token (this
store's id and the write's sequence number); a batch written again after a failure
(``StoreWriter`` resends it unchanged) keeps its token, so one whose first attempt landed after
all is not counted twice.

**Reads are one snapshot.**  ClickHouse has no transactions across statements, but a MergeTree
numbers each part as it commits it, under the lock that makes it visible: block numbers are in
commit order, so "every block up to N" is a state the table really was in.  A read first reads
the registry, whose rows report the newest block among the parts they came from: N (a part
committed after the query began is not read, and has a higher number than any it read); then it
reads every window of the plan only from parts whose blocks are all at most N.  A background
merge may meanwhile fold a newer block into an older part; each query reports the newest block
among the parts it read, and when one held a block past N the read starts over (rare: a merge
must complete during the read).  So a read returns exactly the state after block N, whatever
was written during it, in two queries.

**Retention**: ``prune(before_s)`` records a horizon (in a table, so every gateway reads the
same); reads leave out what lies before it, and a TTL deletes whole parts a day after
(``retention_s``), so deletion never changes what a read in progress sees.

Errors are ``StoreError``: ``transient`` unless the data itself is at fault (a value out of
range), so the writer keeps minutes for a retry while the server is unreachable.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.aggregate.window import Window
from podtrace_collector.errors import ConfigError, StoreError
from podtrace_collector.store import _chrows, _churl, _chwindows
from podtrace_collector.store import _chschema as s
from podtrace_collector.store.base import BUCKET_S, P, Registry, Snapshot

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

logger = logging.getLogger(__name__)

TTL_SLACK_S = 86_400  # rows are deleted a day after reads stop showing them
_ATTEMPTS = 20  # reads started over because a merge folded a newer write into a part
# Server error codes that mean the data is at fault (parse, type, range): retrying cannot help.
_DATA_CODES = frozenset({6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 131, 321})
_INSERT_SETTINGS = {
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "async_insert": 0,
}


class ClickHouseStore:
    """Aggregates of any number of gateways in one ClickHouse database.

    Args:
        url: ``clickhouse://…/DATABASE`` or ``chdb://PATH[?database=NAME]`` (``_churl``).
        retention_s: rows are deleted (TTL) this long, plus a day, after their bucket ends;
            ``None``: never.

    Raises:
        ConfigError: a bad URL, the client library missing, an in-process engine that cannot be
            opened, or a database written by an incompatible version.  A server that cannot be
            reached yet is not an error: the store connects on its next write or read.
    """

    def __init__(self, url: str, *, retention_s: float | None = None) -> None:
        self.target = _churl.parse(url)
        self.url = _churl.describe(url)
        self._db = self.target.database
        self._ttl_s = int(retention_s) + TTL_SLACK_S if retention_s and retention_s > 0 else None
        self._ingest = f"{s.q(self._db)}.{s.ingest_name()}"
        self._lock = threading.Lock()  # the writing client and the schema set-up
        self._local = threading.local()  # one reading client per thread
        self._clients: list[Client] = []
        self._writer: Client | None = None
        self._ready = False
        self._id = uuid.uuid4().hex[:16]
        self._seq = 0
        self._unacknowledged: tuple[Mapping[int, Aggregates], int] | None = None
        self._horizon: int | None = None  # the retention horizon, as the last read found it
        if self.target.path is not None:
            _check_writable(self.target.path)
        try:
            with self._lock:
                self._set_up()
        except StoreError as exc:
            if self.target.path is not None:
                raise ConfigError(f"cannot open the store {self.url!r}: {exc}") from exc
            logger.warning(
                "ClickHouse at %s not ready (%s); retrying with each write", self.url, exc
            )

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        """Insert minutes (one INSERT, deduplicated by token when sent again after a failure).

        Raises:
            StoreError: nothing (or, after a lost answer, perhaps all) of it was written;
                ``transient`` unless the data itself cannot be stored.
        """
        try:
            columns = _chrows.encode(buckets)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StoreError(f"cannot encode the batch: {exc}", transient=False) from exc
        if not columns[0]:
            return
        with self._lock:
            seq = self._sequence(buckets)
            try:
                self._insert(self._set_up(), columns, f"{self._id}-{seq}")
            except Exception as exc:
                error = _error(exc, self.url)
                self._unacknowledged = (buckets, seq) if error.transient else None
                raise error from exc
            self._unacknowledged = None

    def read(self, plan: Callable[[Registry], P]) -> Snapshot[P]:
        """The registry and the planned windows, all as of one committed block (one snapshot).

        Raises:
            StoreError: the server could not be read (transient).
        """
        for _ in range(_ATTEMPTS):
            client = self._reader()
            horizon = self._horizon  # as the last read found it: it moves only with a prune
            retained = s.ranges(None, None, horizon)
            rows = self._query(client, s.registry_sql(self._db, retained), {})
            if rows:
                wm, now = max(int(r[-2]) for r in rows), _horizon(rows[0][-1])
            else:  # no revision: the snapshot from the table's parts
                ((wm, now),) = self._query(client, s.snapshot_sql(self._db), {"db": self._db})
                wm, now = int(wm or 0), _horizon(now)
            if now != horizon:
                self._horizon = now
                continue
            registry = _chrows.registry(rows)
            made = plan(registry)
            windows = self._windows(client, list(made.windows), wm, horizon)
            if windows is not None:
                return Snapshot(registry, made, windows)
        raise StoreError(
            f"{self.url}: no consistent read after {_ATTEMPTS} attempts (merges kept folding"
            " new writes into the parts being read)"
        )

    def prune(self, before_s: float, *, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Hide the minutes that end at or before ``before_s`` from every gateway's reads;
        returns how many minutes that hid.  The TTL deletes them a day later."""
        horizon = math.floor(before_s)
        with self._lock:
            try:
                client = self._set_up()
                ((_, old),) = self._query(client, s.snapshot_sql(self._db), {"db": self._db})
                if old is not None and horizon <= old:
                    return 0
                low = s.FAR_PAST if old is None else int(old)
                ((count,),) = self._query(
                    client,
                    f"SELECT count(DISTINCT bucket) FROM {s.q(self._db)}.{s.TABLE}"
                    f" WHERE tier = {s.MINUTE} AND bucket + {BUCKET_S} <= {horizon}"
                    f" AND bucket + {BUCKET_S} > {low}",
                    {},
                )
                client.command(f"INSERT INTO {s.q(self._db)}.horizon (before_s) VALUES ({horizon})")
            except StoreError:
                raise
            except Exception as exc:
                raise _error(exc, self.url) from exc
        return int(count)

    def close(self) -> None:
        """Close every client (the in-process engine closes with the last one)."""
        with self._lock:
            for client in self._clients:
                try:
                    client.close()
                except Exception:  # closing is best effort
                    logger.debug("closing a ClickHouse client failed", exc_info=True)
            self._clients.clear()
            self._writer = None
            self._local = threading.local()

    def _insert(self, client: Client, columns: list[list[Any]], token: str) -> None:
        """One INSERT.  A batch of several minutes has rows of one key in one coarse bucket,
        which the engine merges as it writes the part; a single minute has none, and merging
        anyway (sorting and re-aggregating every row) was most of the insert's cost."""
        several = len(set(columns[1])) > 1  # the minute column
        client.insert(
            self._ingest,
            columns,
            column_names=s.INGEST_COLUMNS,
            column_type_names=s.INGEST_TYPES,
            column_oriented=True,
            settings={
                **_INSERT_SETTINGS,
                "insert_deduplication_token": token,
                "optimize_on_insert": int(several),
            },
        )

    def _windows(
        self, client: Client, windows: Sequence[Window], wm: int, horizon: int | None
    ) -> list[Aggregates] | None:
        """Every window in one query (``_chwindows``); ``None`` when a part read held a block
        newer than the snapshot's."""
        wanted = _chwindows.reads(windows, horizon)
        if not wanted:
            return [Aggregates() for _ in windows]
        sql, params = _chwindows.windows_sql(self._db, wanted)
        rows = self._query(client, sql, {**params, "wm": wm})
        return None if _newer(rows, wm) else _chrows.windows(rows, len(windows))

    def _query(self, client: Client, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        try:
            return client.query(sql, parameters=params).result_rows
        except Exception as exc:
            raise _error(exc, self.url) from exc

    def _sequence(self, buckets: Mapping[int, Aggregates]) -> int:
        """The write's sequence number: the failed one's when this is that batch again."""
        failed = self._unacknowledged
        if failed is not None and (failed[0] is buckets or failed[0] == buckets):
            return failed[1]
        self._seq += 1
        return self._seq

    def _reader(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            if not self._ready:
                with self._lock:
                    self._set_up()
            client = self._local.client = self._connect()
            with self._lock:
                self._clients.append(client)
        return client

    def _set_up(self) -> Client:
        """The writing client, connected and with the schema in place (lock held)."""
        if self._writer is None:
            self._writer = self._connect()
            self._clients.append(self._writer)
        if not self._ready:
            try:
                _create_schema(self._writer, self._db, self._ttl_s)
            except (StoreError, ConfigError):
                raise
            except Exception as exc:
                raise _error(exc, self.url) from exc
            self._ready = True
        return self._writer

    def _connect(self) -> Client:
        try:
            import clickhouse_connect
        except ImportError as exc:
            extra = "chdb" if self.target.path is not None else "clickhouse"
            raise ConfigError(
                f"the store {self.url!r} needs the {extra} extra: pip install 'podtrace[{extra}]'"
            ) from exc
        try:
            if self.target.path is not None:
                return clickhouse_connect.get_client(interface="chdb", path=self.target.path)
            server: dict[str, Any] = dict(self.target.server)
            return clickhouse_connect.get_client(
                **server,
                connect_timeout=5,
                send_receive_timeout=30,
                autogenerate_session_id=False,
            )
        except ImportError as exc:  # chdb:// without chdb-core
            raise ConfigError(f"{self.url}: {exc} (pip install 'podtrace[chdb]')") from exc
        except Exception as exc:
            raise _error(exc, self.url) from exc


def _create_schema(client: Client, db: str, ttl_s: int | None) -> None:
    """Create what is missing: database, tables, columns, the current ingest table and view."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {s.q(db)}")
    for stmt in s.other_ddl(db):
        client.command(stmt)
    ((version, count),) = client.query(
        f"SELECT max(version), count() FROM {s.q(db)}.schema_version"
    ).result_rows
    if not count:
        client.command(f"INSERT INTO {s.q(db)}.schema_version VALUES ({s.SCHEMA_VERSION})")
    elif version != s.SCHEMA_VERSION:
        raise ConfigError(
            f"the ClickHouse database {db!r} has podtrace schema version {version};"
            f" this podtrace reads version {s.SCHEMA_VERSION}"
        )
    client.command(s.aggregates_ddl(db, ttl_s))
    _add_missing_columns(client, db)
    _set_ttl(client, db, ttl_s)
    for stmt in s.ingest_ddl(db):
        client.command(stmt)


def _add_missing_columns(client: Client, db: str) -> None:
    """Fields declared since the table was made arrive as columns with their neutral default;
    a map with more key parts adds key columns to the end of the sorting key."""
    present = {
        r[0]
        for r in client.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
            parameters={"db": db, "t": s.TABLE},
        ).result_rows
    }
    table = f"{s.q(db)}.{s.TABLE}"
    for c in s.COLUMNS:
        if c.name not in present:
            client.command(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {s.column_ddl(c)}")
    missing = [k for k in s.KEYS if k not in present]
    if missing:
        adds = ", ".join(f"ADD COLUMN IF NOT EXISTS {k} String" for k in missing)
        client.command(f"ALTER TABLE {table} {adds}, MODIFY ORDER BY ({s.sorting_key()})")


def _set_ttl(client: Client, db: str, ttl_s: int | None) -> None:
    """The table's TTL follows the retention of the gateway that opened it last."""
    if ttl_s is None:
        return
    ((create,),) = client.query(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String}"
        " AND name = {t:String}",
        parameters={"db": db, "t": s.TABLE},
    ).result_rows
    if f"toIntervalSecond({ttl_s})" not in create:
        client.command(
            f"ALTER TABLE {s.q(db)}.{s.TABLE} MODIFY{s.ttl_clause(ttl_s)}",
            settings={"materialize_ttl_after_modify": 0},
        )


def _horizon(value: Any) -> int | None:
    return None if value is None else int(value)


def _newer(rows: Sequence[Sequence[Any]], wm: int) -> bool:
    """Whether a query read a part holding a block newer than the snapshot (last column)."""
    return any(row[-1] > wm for row in rows)


def _error(exc: BaseException, url: str) -> StoreError:
    """A client or server error as ``StoreError``; not transient when the data is at fault."""
    from clickhouse_connect.driver.exceptions import DataError

    code = getattr(exc, "code", None)
    transient = not (isinstance(exc, DataError) or code in _DATA_CODES)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreError(f"{url}: {first_line}", transient=transient)


def _check_writable(path: str) -> None:
    """Refuse at start an engine directory that could never be written."""
    target = path if os.path.exists(path) else os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(target) or not os.access(target, os.W_OK):
        raise ConfigError(f"cannot write the store directory {path!r}")
