"""Parsing of since/until values and RFC 3339 formatting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.api.errors import status_of
from podtrace_collector.durations import (
    duration_s,
    format_time,
    parse_optional,
    parse_time,
    parse_window,
)
from podtrace_collector.errors import QueryError

NOW = 1_764_000_000.0  # 2025-11-24T16:00:00Z


def _unix(year: int, month: int, day: int, hour: int = 0) -> float:
    return datetime(year, month, day, hour, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T10:00:00Z", _unix(2026, 11, 24, 10)),
        ("2026-11-24t10:00:00z", _unix(2026, 11, 24, 10)),
        ("2026-11-24 10:00:00Z", _unix(2026, 11, 24, 10)),
        ("2026-11-24T12:00:00+02:00", _unix(2026, 11, 24, 10)),
        ("2026-11-24T05:30:00-04:30", _unix(2026, 11, 24, 10)),
        ("2026-11-24T10:00:00.25Z", _unix(2026, 11, 24, 10) + 0.25),
        ("2026-11-24T10:00:00.123456789Z", _unix(2026, 11, 24, 10) + 0.123456),
        ("  2026-11-24T10:00:00Z  ", _unix(2026, 11, 24, 10)),
        ("1970-01-01T00:00:00Z", 0.0),
    ],
)
def test_rfc3339(text: str, expected: float) -> None:
    """RFC 3339 timestamps with Z or an offset parse to Unix seconds."""
    assert parse_time(text, NOW) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "back_s"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("7d", 7 * 86400),
        ("1w", 7 * 86400),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("0s", 0),
    ],
)
def test_durations_count_back_from_now(text: str, back_s: float) -> None:
    """A duration is that long before now."""
    assert parse_time(text, NOW) == NOW - back_s


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("yesterday", "expected RFC 3339"),
        ("15", "needs a unit"),
        ("-15m", "negative"),
        ("15x", "expected RFC 3339"),
        ("15 m", "expected RFC 3339"),
        ("m", "expected RFC 3339"),
        ("99999d", "ten years"),
        ("2026-11-24T10:00:00", "expected RFC 3339"),
        ("2026-11-24", "expected RFC 3339"),
        ("2026-13-01T00:00:00Z", "not a valid date"),
        ("2026-02-30T00:00:00Z", "not a valid date"),
        ("2026-11-24T10:00:60Z", "not a valid date"),
        ("2026-11-24T10:00:00+25:00", "not a valid date"),
        ("1969-12-31T23:59:59Z", "before 1970"),
        ("1" * 100 + "s", "too long"),
        ("NaNs", "expected RFC 3339"),
    ],
)
def test_garbage_is_bad_time(text: str, hint: str) -> None:
    """Malformed, negative and absurd values raise a 400 bad_time with a helpful message."""
    with pytest.raises(QueryError) as info:
        parse_time(text, NOW)
    assert (status_of(info.value), info.value.code) == (400, "bad_time")
    assert hint in str(info.value)


def test_parse_optional_keeps_none() -> None:
    """An absent parameter stays absent."""
    assert parse_optional(None, NOW) is None
    assert parse_optional("1m", NOW) == NOW - 60


def test_parse_window_rejects_reversed_window() -> None:
    """since later than until is a bad_time error; equal bounds are allowed."""
    assert parse_window("2h", "1h", NOW) == (NOW - 7200, NOW - 3600)
    assert parse_window(None, None, NOW) == (None, None)
    assert parse_window("1h", "1h", NOW) == (NOW - 3600, NOW - 3600)
    with pytest.raises(QueryError) as info:
        parse_window("1h", "2h", NOW)
    assert info.value.code == "bad_time"


@pytest.mark.parametrize(
    ("unix_s", "text"),
    [
        (0.0, "1970-01-01T00:00:00Z"),
        (NOW, "2025-11-24T16:00:00Z"),
        (NOW + 0.5, "2025-11-24T16:00:00.500Z"),
        (NOW + 0.0004, "2025-11-24T16:00:00Z"),
    ],
)
def test_format_time(unix_s: float, text: str) -> None:
    """Times print as RFC 3339 UTC with Z, milliseconds only when present."""
    assert format_time(unix_s) == text


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=4_000_000_000_000))
def test_format_then_parse_round_trips(unix_ms: int) -> None:
    """Whatever format_time prints, parse_time reads back to the millisecond."""
    unix_s = unix_ms / 1000
    assert parse_time(format_time(unix_s), NOW) == pytest.approx(unix_s, abs=1e-3)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("1H30M", 5400.0), ("2w", 1_209_600.0), ("15m", 900.0), ("1m", 60.0)],
)
def test_duration_grammar(text: str, seconds: float) -> None:
    """One duration grammar for flags and query parameters: ms to weeks, parts, any case."""
    assert duration_s(text) == seconds
    assert parse_time(text, NOW) == NOW - seconds


@pytest.mark.parametrize("text", ["", "5", "m", "5y", "1.s", "5 m", "-1s"])
def test_not_a_duration(text: str) -> None:
    """``duration_s`` says None rather than guess."""
    assert duration_s(text) is None
