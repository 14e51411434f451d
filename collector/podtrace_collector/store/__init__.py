"""Storage of per-minute aggregates: ``open_store(url)`` picks the implementation.

``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (the SQLAlchemy convention:
what follows ``sqlite:///`` is the path) opens a ``SqliteStore``; ``memory`` a ``MemoryStore``;
``clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE`` and ``chdb://PATH`` a ``ClickHouseStore``
(the ``clickhouse`` extra), shared by a fleet of gateways.
"""

from __future__ import annotations

from podtrace_collector.errors import ConfigError
from podtrace_collector.store import _churl
from podtrace_collector.store.base import BUCKET_S, Store
from podtrace_collector.store.memory import MemoryStore
from podtrace_collector.store.sqlite import SqliteStore

__all__ = ["BUCKET_S", "MemoryStore", "SqliteStore", "Store", "check_url", "open_store"]

_SQLITE = "sqlite:///"
_CLICKHOUSE = ("clickhouse://", "chdb://")
EXPECTED = (
    "expected 'memory', 'sqlite:///path/podtrace.db' (sqlite:////abs/path.db for an absolute"
    " path), 'clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE' or 'chdb://PATH'"
)


def check_url(url: str) -> None:
    """Check a store URL's form without opening anything.

    Raises:
        ConfigError: an unknown scheme, an empty path, a ClickHouse URL without a database.
    """
    text = url.strip()
    if text == "memory" or (text.startswith(_SQLITE) and text[len(_SQLITE) :].strip()):
        return
    if text.startswith(_CLICKHOUSE):
        _churl.parse(text)
        return
    raise ConfigError(f"bad store URL {_churl.describe(url)!r}: {EXPECTED}")


def open_store(url: str, *, retention_s: float | None = None) -> Store:
    """Open the store named by ``url``.

    Args:
        url: ``"memory"``, ``"sqlite:///<path>"``, ``"clickhouse://…/DATABASE"`` or
            ``"chdb://<path>"``.
        retention_s: how long a ClickHouse store keeps rows (its TTL); the other stores are
            pruned by the writer alone.

    Raises:
        ConfigError: a bad URL, a file or engine that cannot be opened.
    """
    check_url(url)
    text = url.strip()
    if text == "memory":
        return MemoryStore()
    if text.startswith(_SQLITE):
        return SqliteStore(text[len(_SQLITE) :])
    from podtrace_collector.store.clickhouse import ClickHouseStore  # the optional extra

    return ClickHouseStore(text, retention_s=retention_s)
