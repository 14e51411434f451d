"""Storage of per-minute aggregates: ``open_store(url)`` picks the implementation.

``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (the SQLAlchemy convention:
what follows ``sqlite:///`` is the path) opens a ``SqliteStore``; ``memory`` a ``MemoryStore``.
"""

from __future__ import annotations

from podtrace_collector.errors import ConfigError
from podtrace_collector.store.base import BUCKET_S, Store
from podtrace_collector.store.memory import MemoryStore
from podtrace_collector.store.sqlite import SqliteStore

__all__ = ["BUCKET_S", "MemoryStore", "SqliteStore", "Store", "open_store"]

_SQLITE = "sqlite:///"


def open_store(url: str) -> Store:
    """Open the store named by ``url``.

    Args:
        url: ``"memory"`` or ``"sqlite:///<path>"``.

    Raises:
        ConfigError: an unknown scheme, an empty path, or a file that cannot be opened.
    """
    text = url.strip()
    if text == "memory":
        return MemoryStore()
    if text.startswith(_SQLITE) and text[len(_SQLITE) :].strip():
        return SqliteStore(text[len(_SQLITE) :])
    raise ConfigError(
        f"bad store URL {url!r}: expected 'memory' or 'sqlite:///path/podtrace.db'"
        " (sqlite:////abs/path.db for an absolute path)"
    )
