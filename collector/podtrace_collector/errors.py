"""Every exception the collector raises, as domain errors; the edges map them to wire statuses.

CollectorError
├── ConfigError            a flag, environment variable or store URL has a bad value
├── IngestError            an OTLP export that cannot be taken (``receive/status.py`` maps it)
│   ├── DecodeError        the body is not OTLP
│   ├── TooLarge           larger than the whole budget or the body limit: never retryable
│   └── Overloaded         a budget or queue is full: retry later (``retry_after_s``)
│       ├── Busy           too many exports in progress: retry later
│       └── ShuttingDown   the collector is stopping: retry (elsewhere, or after the restart)
├── QueryError             a query that cannot be answered (``api/errors.py`` maps it)
│   ├── BadRequest         a malformed or contradictory parameter
│   │   └── BadTime        a malformed time or window
│   ├── UnknownWorkload    no retained spans of that workload
│   ├── UnknownRevision    the workload has no such revision (or version)
│   ├── NotFound           no such page file
│   └── NoStore            this collector keeps no results (a sidecar)
├── StoreError             the store failed to read or write
├── InjectError            a pod template podtrace cannot be added to as asked (``inject``)
│   ├── ManifestError      the input is not Kubernetes manifests (invalid YAML, not a mapping)
│   └── ReviewError        a webhook request is not an ``AdmissionReview`` v1 request
└── DemoError              ``podtrace demo`` cannot go on (a process failed, the API is silent)

Each ``QueryError`` carries a ``code``: the machine-readable name the API puts in its error
envelope (``{"error": {"code": ..., "message": ...}}``).  Statuses live only at the edges.
"""

from __future__ import annotations


class CollectorError(Exception):
    """Root of the collector's exceptions."""


class ConfigError(CollectorError):
    """A bad flag, environment variable or store URL; ``flag`` names the flag when known."""

    def __init__(self, message: str, *, flag: str | None = None) -> None:
        super().__init__(message)
        self.flag = flag


class IngestError(CollectorError):
    """An OTLP export request that cannot be taken as it is."""


class DecodeError(IngestError):
    """An OTLP request body is not valid protobuf or JSON of the expected shape."""


class TooLarge(IngestError):
    """One request is larger than what can ever be taken: retrying it cannot succeed."""


class Overloaded(IngestError):
    """A budget or queue is full; the client should retry after ``retry_after_s``."""

    def __init__(self, message: str = "collector overloaded", *, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Busy(Overloaded):
    """As many exports as admission allows are in progress; the client should retry later."""


class ShuttingDown(Overloaded):
    """The collector is stopping; clients should retry (elsewhere, or after the restart)."""


class QueryError(CollectorError):
    """A query the API cannot answer; ``code`` names the reason for machines."""

    code = "bad_request"


class BadRequest(QueryError):
    """A malformed, contradictory or missing query parameter."""


class BadTime(BadRequest):
    """A malformed time, duration or window (``since``/``until``)."""

    code = "bad_time"


class UnknownWorkload(QueryError):
    """No spans of the workload (or service) are retained."""

    code = "unknown_workload"


class UnknownRevision(QueryError):
    """The workload has no such revision, or no revision of such a version."""

    code = "unknown_revision"


class NotFound(QueryError):
    """No such page file."""

    code = "not_found"


class NoStore(QueryError):
    """This collector keeps no results (a sidecar): query the gateway."""

    code = "no_store"


class StoreError(CollectorError):
    """The store could not read or write; ``transient`` when a retry can succeed (a lock, a
    full disk, a lost connection), not when the data itself is the cause."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class InjectError(CollectorError):
    """A pod template cannot be injected as asked; the message says why and what to do."""


class ManifestError(InjectError):
    """The input is not a stream of Kubernetes objects."""


class ReviewError(InjectError):
    """The request body is not an ``AdmissionReview`` v1 request."""


class DemoError(CollectorError):
    """The demo cannot go on: a process failed to start, died, or the API did not answer."""
