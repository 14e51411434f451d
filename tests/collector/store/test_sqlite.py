"""Tests for store.sqlite beyond the shared contract (test_contract.py): the file itself."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from podtrace_collector.aggregate.stats import Aggregates, EdgeStats
from podtrace_collector.errors import ConfigError, StoreError
from podtrace_collector.store import _histblob, _rollup, _schema
from podtrace_collector.store.memory import MemoryStore
from podtrace_collector.store.sqlite import SqliteStore

from tests.collector.store.samples import T0, hist, merged, registry, sample, window


def test_survives_restart(tmp_path: Path) -> None:
    """Everything written is there after close and reopen of the file."""
    path = tmp_path / "p.db"
    st = SqliteStore(path)
    st.write({T0: sample(0), T0 + 60: sample(1, bucket_s=T0 + 60)})
    before, reg = window(st), registry(st)
    st.close()
    again = SqliteStore(path)
    assert window(again) == before
    assert registry(again) == reg
    again.write({T0: sample(2)})
    assert window(again) == merged(sample(0), sample(1, bucket_s=T0 + 60), sample(2))
    again.close()


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    """The file is in WAL mode and records its schema version."""
    path = tmp_path / "p.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        SqliteStore(path)


def test_unopenable_file_is_a_config_error(tmp_path: Path) -> None:
    """A path in a missing directory gives ConfigError, not a sqlite3 traceback."""
    with pytest.raises(ConfigError, match="cannot open"):
        SqliteStore(tmp_path / "missing" / "p.db")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError):
        SqliteStore(tmp_path / "junk.db")


def test_a_read_loads_the_keys_it_asks_for_by_the_index(tmp_path: Path) -> None:
    """Histograms of a few keys are fetched key by key; of many keys, in one scan."""
    st = SqliteStore(tmp_path / "p.db")
    batch = {}
    for m in range(3):
        a = Aggregates()
        for i in range(40):
            a.edges[(f"shop/a{i:02d}", "shop/db")] = EdgeStats(10 + i, i, hist(1 + i, 2 + m))
        a.revisions = sample(m).revisions
        batch[T0 + 60 * m] = a
    st.write(batch)
    queries: list[str] = []
    st._reader().set_trace_callback(queries.append)
    got = window(st, T0, T0 + 180, details=frozenset({("shop/cart", "abc12")}))
    want = merged(*(sample(m) for m in range(3))).revisions[("shop/cart", "abc12")]
    assert got.revisions[("shop/cart", "abc12")] == want
    assert sum("FROM revisions WHERE workload = 'shop/cart'" in q for q in queries) == 1
    assert sum("ORDER BY caller, callee, bucket" in q for q in queries) == 1  # one scan
    assert [e.latency.total for e in got.edges.values()] == [6] * 40
    st.close()


def test_a_read_only_file_is_refused_at_open(tmp_path: Path) -> None:
    """A store file that cannot be written is a ConfigError at start, not data lost later.

    Run as an unprivileged user (root ignores file modes): the collector as a pod runs it.
    """
    work = Path(tempfile.mkdtemp(prefix="podtrace-ro-"))
    try:
        work.chmod(0o777)
        path = work / "p.db"
        SqliteStore(path).close()
        path.chmod(0o444)
        code = (
            "import os, sys\n"
            "from podtrace_collector.errors import ConfigError\n"
            "from podtrace_collector.store.sqlite import SqliteStore\n"
            "if os.geteuid() == 0:\n"  # imported as root: now become nobody
            "    os.setgid(65534)\n"
            "    os.setuid(65534)\n"
            "try:\n"
            f"    SqliteStore({str(path)!r})\n"
            "except ConfigError as exc:\n"
            "    print(exc)\n"
            "    sys.exit(3)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 3, proc.stderr
        assert "not writable" in proc.stdout
    finally:
        shutil.rmtree(work)


def test_a_damaged_file_is_refused_at_open(tmp_path: Path) -> None:
    """Garbage inside the database (past its header) is found by quick_check at open."""
    path = tmp_path / "p.db"
    st = SqliteStore(path)
    st.write({T0 + 60 * k: sample(k, bucket_s=T0 + 60 * k) for k in range(40)})
    st.close()
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{path}{suffix}").exists() or Path(f"{path}{suffix}").unlink() is None
    data = bytearray(path.read_bytes())
    assert len(data) > 16_384
    data[8192:12288] = b"\xa5" * 4096  # the second page and more
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"damaged|malformed|not a database"):
        SqliteStore(path)


def test_new_columns_are_added_to_an_older_file(tmp_path: Path) -> None:
    """A field declared after a file was made arrives as a new column with its default."""
    path = tmp_path / "p.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE entry_totals DROP COLUMN with_user")
    conn.commit()
    conn.close()
    st = SqliteStore(path)
    st.write({T0: sample(0)})
    assert window(st).entry_totals == sample(0).entry_totals
    st.close()


def test_a_full_disk_is_a_transient_error_naming_the_cause(tmp_path: Path) -> None:
    """Out of space, the write fails with SQLite's own reason (not a failed rollback's), as a
    transient error; writes succeed again once there is room."""
    st = SqliteStore(tmp_path / "p.db")
    st.write({T0: sample(0)})
    pages = st._db.execute("PRAGMA page_count").fetchone()[0]
    st._db.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: a full disk
    big = {T0 + 60 * k: sample(k, bucket_s=T0 + 60 * k) for k in range(1, 200)}
    with pytest.raises(StoreError) as caught:
        st.write(big)
    assert caught.value.transient
    assert "full" in str(caught.value) and "rollback" not in str(caught.value)
    st._db.execute("PRAGMA max_page_count = 1073741823")
    st.write(big)
    assert window(st).traces == sum(sample(k).traces for k in range(200))
    st.close()


def test_histograms_stored_as_json_text_by_older_versions_still_read(tmp_path: Path) -> None:
    """A file whose histograms are JSON text (as older versions wrote them) reads the same,
    and later writes merge into those rows."""
    path = tmp_path / "p.db"
    st = SqliteStore(path)
    st.write({T0: sample(0)})
    before = window(st)
    st.close()
    conn = sqlite3.connect(path)
    conn.create_function(
        "as_json",
        1,
        lambda blob: json.dumps({str(b): c for b, c in _histblob.counts(blob).items()}),
    )
    for table, column in (("revisions", "latency"), ("edges", "latency"), ("transit", "transit")):
        types = conn.execute(f"SELECT DISTINCT typeof({column}) FROM {table}").fetchall()
        assert types == [("blob",)]
        conn.execute(f"UPDATE {table} SET {column} = as_json({column})")
        types = conn.execute(f"SELECT DISTINCT typeof({column}) FROM {table}").fetchall()
        assert types == [("text",)]
    conn.commit()
    conn.close()
    again = SqliteStore(path)
    assert window(again) == before
    again.write({T0: sample(1)})
    assert window(again) == merged(sample(0), sample(1))
    again.close()


def _buckets_per_tier(path: Path) -> dict[int, int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT span_s, COUNT(DISTINCT bucket) FROM revisions GROUP BY span_s")
        return dict(rows.fetchall())
    finally:
        conn.close()


def _windows_agree(st: SqliteStore, mem: MemoryStore, start: int) -> None:
    bounds: list[tuple[float | None, float | None]] = [(None, None), (start, start + 3600)]
    bounds += [(start + 30, start + 3_630), (start + 600, None), (None, start + 1_200)]
    bounds += [(start + 60 * k, start + 60 * k + 1_234) for k in range(0, 70, 7)]
    cart = frozenset({("shop/cart", "r1")})
    for lo, hi in bounds:
        assert window(st, lo, hi) == window(mem, lo, hi), (lo, hi)
        assert window(st, lo, hi, origins=cart, details=cart) == window(
            mem, lo, hi, origins=cart, details=cart
        )


def test_coarse_rows_are_built_once_their_bucket_is_over(tmp_path: Path) -> None:
    """Writes fill minute rows; a 10-minute or hour bucket's rows are built two minutes after
    it ends, and a minute written for a built bucket is merged into them: every window equals
    the minutes merged, before and after."""
    path = tmp_path / "p.db"
    st, mem = SqliteStore(path), MemoryStore()
    start = T0 - T0 % 3600

    def write(m: int, revision: str = "r1") -> None:
        batch = {start + 60 * m: sample(m, revision=revision, bucket_s=start + 60 * m)}
        st.write(batch)
        mem.write(batch)

    for m in range(11):
        write(m)
    assert _buckets_per_tier(path) == {60: 11}  # the first 10 minutes end 1 minute before
    write(11)
    assert _buckets_per_tier(path) == {60: 12, 600: 1}
    _windows_agree(st, mem, start)
    write(3, revision="r2")  # late: merged into the built 10 minutes
    write(4)
    _windows_agree(st, mem, start)
    for m in range(12, 62):
        write(m)
    assert _buckets_per_tier(path) == {60: 62, 600: 6, 3600: 1}
    write(59, revision="r2")
    _windows_agree(st, mem, start)
    st.close()


def test_a_prune_keeps_revisions_whose_rows_are_not_built_yet(tmp_path: Path) -> None:
    """The registry's recount after a prune counts minutes whose hour is not built yet."""
    st = SqliteStore(tmp_path / "p.db")
    start = T0 - T0 % 3600
    st.write({start - 7_200: sample(0, revision="old01", bucket_s=start - 7_200)})
    st.write({start + 60 * m: sample(m, bucket_s=start + 60 * m) for m in range(5)})
    assert st.prune(start - 3_600) == 1
    reg = registry(st)
    assert set(reg) == {("shop/cart", "abc12"), ("shop/frontend", "fe001")}
    assert reg[("shop/cart", "abc12")].requests == sum(100 + m for m in range(5))
    st.close()


def test_a_file_whose_coarse_rows_were_built_at_each_write_reads_on(tmp_path: Path) -> None:
    """A file from before built rows were deferred (every coarse row built, no record of it)
    reads the same, and later minutes of its buckets are merged into its coarse rows."""
    path = tmp_path / "p.db"
    st, mem = SqliteStore(path), MemoryStore()
    start = T0 - T0 % 3600
    batch = {start + 60 * m: sample(m, revision="r1", bucket_s=start + 60 * m) for m in range(40)}
    st.write(batch)
    mem.write(batch)
    with st._transaction() as db:  # as such a file is: every coarse row, no rollups records
        db.execute("DELETE FROM rollups")
        for t in _schema.BUCKET_TABLES:
            for span, count in ((600, 4), (3600, 1)):
                for k in range(count):
                    st._rebuild(db, t, span, start + span * k)
    st.close()
    st = SqliteStore(path)
    assert _buckets_per_tier(path) == {60: 40, 600: 4, 3600: 1}
    _windows_agree(st, mem, start)
    late = {start + 60 * 35: sample(35, revision="r1", bucket_s=start + 60 * 35)}
    st.write(late)
    mem.write(late)
    _windows_agree(st, mem, start)
    st.close()


def test_a_failed_build_does_not_fail_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Building coarse rows after a write's commit may fail (an I/O error): the write still
    succeeds (a retried batch would count twice), reads use the minutes, and the next write
    builds them."""
    path = tmp_path / "p.db"
    st, mem = SqliteStore(path), MemoryStore()
    start = T0 - T0 % 3600
    batch = {start + 60 * m: sample(m, revision="r1", bucket_s=start + 60 * m) for m in range(12)}
    real_build = _rollup.build

    def failing(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(_rollup, "build", failing)
    st.write(batch)
    mem.write(batch)
    assert "building coarse rows failed" in caplog.text
    assert _buckets_per_tier(path) == {60: 12}
    _windows_agree(st, mem, start)
    monkeypatch.setattr(_rollup, "build", real_build)
    late = {start + 60 * 12: sample(12, revision="r1", bucket_s=start + 60 * 12)}
    st.write(late)
    mem.write(late)
    assert _buckets_per_tier(path) == {60: 13, 600: 1}
    _windows_agree(st, mem, start)
    st.close()
