"""Durations and times: one grammar for flags and query parameters, and RFC 3339 out.

A duration is one or more ``<number><unit>`` parts, units ``ms s m h d w`` in any letter case
(``500ms``, ``90s``, ``15m``, ``2h``, ``7d``, ``1w``, ``1h30m``); flags also take a bare number
of seconds (``config.parse_duration``).  A query time (``since``/``until``) is either an RFC 3339
timestamp with a zone (``2026-11-24T10:00:00Z``, ``2026-11-24T12:00:00.5+02:00``) or a duration
back from now.  Anything else is a ``BadTime`` error (code ``bad_time``) whose
message says what was wrong, so an API user can fix the request without reading the source.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from podtrace_collector.errors import BadTime

# A duration longer than this is a typo, not a query (the store retains days, not decades).
MAX_DURATION_S = 10 * 366 * 86_400.0
_MAX_LEN = 64
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|[smhdw]))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|[smhdw])")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def duration_s(text: str) -> float | None:
    """The seconds of a duration such as ``1h30m`` (any letter case), or ``None`` if it is not one.

    Never raises; a duration too long to be finite is ``inf``.
    """
    lowered = text.strip().lower()
    if len(lowered) > _MAX_LEN or not _DURATION.fullmatch(lowered):
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(lowered))


def parse_time(value: str, now_s: float) -> float:
    """Parse a ``since``/``until`` value into Unix seconds.

    Args:
        value: an RFC 3339 timestamp with ``Z`` or an offset, or a duration back from ``now_s``
            made of ``<number><unit>`` parts, units ``s m h d w`` (``15m``, ``1h30m``).
        now_s: the current time, Unix seconds (durations count back from it).

    Returns:
        The time in Unix seconds.

    Raises:
        BadTime: anything else, negative or absurd values.
    """
    text = value.strip()
    if not text:
        raise _bad(value, "it is empty")
    if len(text) > _MAX_LEN:
        raise _bad(value[:_MAX_LEN] + "…", "it is too long")
    if (span_s := duration_s(text)) is not None:
        if span_s > MAX_DURATION_S:
            raise _bad(value, "the duration is longer than ten years")
        return now_s - span_s
    if _RFC3339.fullmatch(text):
        return _timestamp_s(text, value)
    if text.startswith("-"):
        raise _bad(value, "durations count back from now and cannot be negative")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        raise _bad(value, "a duration needs a unit (ms, s, m, h, d or w), e.g. 15m")
    raise _bad(value, "expected RFC 3339 (2026-11-24T10:00:00Z) or a duration (15m, 2h, 7d)")


def parse_optional(value: str | None, now_s: float) -> float | None:
    """``parse_time`` for an optional parameter: ``None`` stays ``None``."""
    return None if value is None else parse_time(value, now_s)


def parse_window(
    since: str | None, until: str | None, now_s: float
) -> tuple[float | None, float | None]:
    """Parse a ``since``/``until`` pair and check that the window is not reversed.

    Raises:
        BadTime: a malformed value or a ``since`` later than ``until``.
    """
    since_s = parse_optional(since, now_s)
    until_s = parse_optional(until, now_s)
    if since_s is not None and until_s is not None and since_s > until_s:
        raise BadTime(f"since ({since}) is later than until ({until})")
    return since_s, until_s


def format_time(unix_s: float) -> str:
    """Unix seconds as RFC 3339 UTC with a ``Z``; milliseconds only when not a whole second."""
    dt = datetime.fromtimestamp(unix_s, tz=UTC)
    if dt.microsecond // 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp_s(text: str, original: str) -> float:
    # The RFC 3339 pattern (checked by the caller) insists on a zone, which ISO 8601 and
    # ``fromisoformat`` do not; ``fromisoformat`` then does the parsing (nanoseconds truncated).
    try:
        dt = datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise _bad(original, f"it is not a valid date and time ({exc})") from exc
    unix_s = dt.timestamp()
    if unix_s < 0:
        raise _bad(original, "it is before 1970-01-01T00:00:00Z")
    return unix_s


def _bad(value: str, why: str) -> BadTime:
    return BadTime(f"bad time {value!r}: {why}")
