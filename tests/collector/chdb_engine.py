"""The in-process ClickHouse engine (chDB) the tests share, with a database per test.

chDB runs one engine directory per process at a time: every in-process test uses this one
directory, made once per test session, and isolates itself by database name.  Tests that need
an engine of their own (a restart, a SIGKILL) run the collector as a subprocess.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid

_ENGINE: list[str] = []


def engine_dir() -> str:
    """The session's engine directory (made on first use, removed at exit)."""
    if not _ENGINE:
        path = tempfile.mkdtemp(prefix="podtrace-chdb-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _ENGINE.append(path)
    return _ENGINE[0]


def chdb_url(database: str | None = None) -> str:
    """A ``chdb://`` store URL on the shared engine, in a fresh database unless one is named."""
    name = database or f"t_{uuid.uuid4().hex[:12]}"
    return f"chdb://{engine_dir()}?database={name}"
