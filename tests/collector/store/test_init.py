"""Tests for store.open_store: store URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from podtrace_collector.errors import ConfigError
from podtrace_collector.store import MemoryStore, SqliteStore, open_store

from tests.collector.store.samples import T0, sample


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
    with pytest.raises(ConfigError, match="expected 'memory' or 'sqlite:///"):
        open_store(url)


def test_unopenable_sqlite_file(tmp_path: Path) -> None:
    """A file in a missing directory is a ConfigError."""
    with pytest.raises(ConfigError, match="cannot open"):
        open_store(f"sqlite:///{tmp_path}/no/such/dir/p.db")
