"""Tests for store.open_store: store URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from podtrace_collector.errors import ConfigError
from podtrace_collector.store import MemoryStore, SqliteStore, _churl, check_url, open_store
from podtrace_collector.store.clickhouse import ClickHouseStore

from tests.collector.chdb_engine import chdb_url
from tests.collector.store.samples import T0, sample, window


def test_memory_url() -> None:
    """'memory' opens a MemoryStore."""
    assert isinstance(open_store("memory"), MemoryStore)


def test_absolute_sqlite_url(tmp_path: Path) -> None:
    """sqlite:/// followed by an absolute path opens that file."""
    st = open_store(f"sqlite:///{tmp_path}/p.db")
    assert isinstance(st, SqliteStore)
    st.write({T0: sample()})
    st.close()
    assert (tmp_path / "p.db").is_file()


def test_relative_sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///name.db is relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///./rel.db").close()
    assert (tmp_path / "rel.db").is_file()


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A URL that slipped through would create files: keep them in tmp_path.
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    "url",
    ["", "mem", "MEMORY", "sqlite:///", "sqlite:///   ", "sqlite://x.db", "postgres://db", "x.db"],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    """Anything else is a ConfigError naming the accepted forms."""
    with pytest.raises(ConfigError, match=r"expected 'memory', 'sqlite:///.*'chdb://PATH'"):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("clickhouse://db.example:8123", "DATABASE"),
        ("clickhouse://db.example:8123/", "DATABASE"),
        ("clickhouse:///podtrace", "no host"),
        ("clickhouse://db.example:99999/podtrace", "Port out of range"),
        ("clickhouse://db.example/pod-trace", "letters, digits and underscores"),
        ("clickhouse://ann:s3cret@db.example/bad;name", "ann:\\*\\*\\*@db"),
        ("chdb://", "chdb://PATH"),
        ("chdb://./data?database=x.y", "letters, digits"),
        ("chdb://./data?table=x", "chdb://PATH"),
    ],
)
def test_bad_clickhouse_urls_are_config_errors(url: str, message: str) -> None:
    """A ClickHouse URL without a host, database or path is refused before connecting, and the
    message never repeats a password."""
    with pytest.raises(ConfigError, match=message) as caught:
        check_url(url)
    assert "s3cret" not in str(caught.value)


def test_clickhouse_url_parts() -> None:
    """clickhouse:// gives clickhouse-connect's arguments; chdb:// an engine path and database."""
    target = _churl.parse("clickhouse://ann:p%40ss@db.example/pt?secure=true&compress=lz4")
    assert target.database == "pt" and target.path is None
    assert target.server == {
        "host": "db.example", "port": 8443, "secure": True, "username": "ann",
        "password": "p@ss", "compress": "lz4",
    }  # fmt: skip
    plain = _churl.parse("clickhouse://db.example:9000/pt").server
    assert (plain["port"], plain["secure"], "username" in plain) == (9000, False, False)
    local = _churl.parse("chdb:///var/lib/podtrace?database=fleet")
    assert (local.path, local.database) == ("/var/lib/podtrace", "fleet")
    assert _churl.parse("chdb://./data").database == "podtrace"
    assert _churl.describe("clickhouse://ann:s3cret@h/db") == "clickhouse://ann:***@h/db"


def test_chdb_url_opens_a_clickhouse_store() -> None:
    """chdb://PATH opens a ClickHouseStore on the in-process engine, which keeps what it is
    given (the engine directory is the test session's: one per process)."""
    st = open_store(chdb_url(), retention_s=90 * 86_400)
    assert isinstance(st, ClickHouseStore)
    st.write({T0: sample()})
    assert window(st) == sample()
    st.close()


def test_unopenable_sqlite_file(tmp_path: Path) -> None:
    """A file in a missing directory is a ConfigError."""
    with pytest.raises(ConfigError, match="cannot open"):
        open_store(f"sqlite:///{tmp_path}/no/such/dir/p.db")
