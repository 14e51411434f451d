"""Exceptions of the collector.

CollectorError
├── DecodeError     an OTLP body could not be decoded (HTTP 400 / gRPC INVALID_ARGUMENT)
├── Overloaded      a memory budget is exhausted; retryable (HTTP 429/503, RESOURCE_EXHAUSTED)
├── TooLarge        one request holds more than the whole budget; not retryable (HTTP 413)
├── ConfigError     a flag or environment variable has a bad value
└── QueryError      a bad query parameter or an unknown workload (HTTP 4xx with a code)
"""

from __future__ import annotations


class CollectorError(Exception):
    """Root of the collector's exceptions."""


class DecodeError(CollectorError):
    """An OTLP request body is not valid protobuf or JSON of the expected shape."""


class Overloaded(CollectorError):
    """The collector's memory budget is exhausted; the client should retry later."""

    def __init__(self, message: str = "collector overloaded", *, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooLarge(CollectorError):
    """One request is larger than the whole memory budget: retrying it can never succeed."""


class ConfigError(CollectorError):
    """A bad command-line flag or environment variable; ``flag`` names the flag when known."""

    def __init__(self, message: str, *, flag: str | None = None) -> None:
        super().__init__(message)
        self.flag = flag


class QueryError(CollectorError):
    """A query the API cannot answer; ``status`` and ``code`` become the HTTP error envelope."""

    def __init__(self, message: str, *, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
