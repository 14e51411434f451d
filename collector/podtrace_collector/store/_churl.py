"""``clickhouse://`` and ``chdb://`` store URLs: what to connect to, checked before connecting."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from podtrace_collector.errors import ConfigError

DEFAULT_DATABASE = "podtrace"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SECURE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a ClickHouse store lives.

    Attributes:
        database: the database holding podtrace's tables (created if missing).
        path: for ``chdb://``, the directory of the in-process engine; ``None`` for a server.
        server: for ``clickhouse://``, clickhouse-connect's connection arguments (host, port,
            username, password, secure, and the URL's other query parameters).
    """

    database: str
    path: str | None = None
    server: dict[str, str | int | bool] = field(default_factory=dict)


def parse(url: str) -> Target:
    """Parse a ``clickhouse://`` or ``chdb://`` URL.

    ``clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?secure=true&…]`` (clickhouse-connect's
    DSN; HTTP, port 8123, or HTTPS with ``secure=true``, port 8443) and
    ``chdb://PATH[?database=NAME]`` (the in-process engine's directory; database ``podtrace``).

    Raises:
        ConfigError: not such a URL, or a missing host, database or path; the message never
            repeats a password.
    """
    text = url.strip()
    if text.startswith("chdb://"):
        return _chdb(text)
    if text.startswith("clickhouse://"):
        return _server(text)
    raise ConfigError(f"not a ClickHouse store URL: {_redact(text)!r}")


def _chdb(text: str) -> Target:
    path, _, query = text[len("chdb://") :].partition("?")
    options = dict(parse_qsl(query))
    database = options.pop("database", DEFAULT_DATABASE)
    if not path.strip() or options:
        raise ConfigError(
            f"bad store URL {text!r}: expected chdb://PATH (a directory) or"
            " chdb://PATH?database=NAME"
        )
    return Target(_database(database, text), path=unquote(path))


def _server(text: str) -> Target:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad store URL {_redact(text)!r}: {exc}") from None
    if not parts.hostname:
        raise ConfigError(f"bad store URL {_redact(text)!r}: no host")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(
            f"bad store URL {_redact(text)!r}: expected"
            " clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE"
        )
    server: dict[str, str | int | bool] = dict(parse_qsl(parts.query))
    secure = str(server.pop("secure", "")).lower() in _SECURE
    server.update(host=parts.hostname, port=port or (8443 if secure else 8123), secure=secure)
    if parts.username:
        server["username"] = unquote(parts.username)
    if parts.password:
        server["password"] = unquote(parts.password)
    return Target(_database(database, text), server=server)


def _database(name: str, text: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"bad store URL {_redact(text)!r}: the database must be a name of letters, digits"
            f" and underscores, not {name!r}"
        )
    return name


def _redact(text: str) -> str:
    """``text`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", text)


def describe(url: str) -> str:
    """The URL to show in logs and errors: without its password."""
    return _redact(url.strip())
