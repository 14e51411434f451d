"""OTLP endpoint URLs: what podtrace accepts, what it passes to the exporters, and clear refusals.

The OTLP exporter specification wants an endpoint to be a URL with an ``http`` or ``https``
scheme. A bare ``HOST:PORT`` is what people type for a sidecar, and the HTTP exporter turns it
into a URL no HTTP library can use ("No connection adapters were found"), failing every export
quietly. podtrace reads ``HOST:PORT`` as ``http://HOST:PORT`` (plaintext, like the sidecar) for
both protocols, and refuses anything else that is not an http(s) URL with a host, saying why.

For OTLP/HTTP a value from ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT`` gets the
same reading (with a warning naming the variable: other OpenTelemetry components of the app read
it as it is). For OTLP/gRPC the variables are left to the exporter, whose reading of a bare
``HOST:PORT`` is the specification's: TLS unless ``OTEL_EXPORTER_OTLP_INSECURE=true``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from podtrace import environment_variables as envvars

TRACES_PATH = "/v1/traces"
EXAMPLE = "http://localhost:4318"


class EndpointError(ValueError):
    """An endpoint that is not an http(s) URL; the message says what is wrong and what to give."""


class FromVariable(NamedTuple):
    """A traces URL read from a standard variable."""

    variable: str
    url: str
    scheme_added: bool


def parse(value: str, *, what: str = "endpoint") -> str:
    """``value`` as an http(s) URL; ``HOST:PORT`` becomes ``http://HOST:PORT``.

    Raises:
        EndpointError: empty, an unknown scheme, no host, a port that is not a number.
    """
    text = value.strip()
    url = text if "://" in text else "http://" + text
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EndpointError(
            f"{what} {value!r}: the port must be a number from 0 to 65535, e.g. {EXAMPLE}"
        ) from None
    if parts.scheme.lower() not in {"http", "https"}:
        raise EndpointError(f"{what} {value!r}: the scheme must be http or https, e.g. {EXAMPLE}")
    if not parts.hostname:
        raise EndpointError(f"{what} {value!r} has no host; expected a URL such as {EXAMPLE}")
    if "://" not in text and port is None:
        raise EndpointError(
            f"{what} {value!r} has no scheme; give http://HOST:PORT or https://HOST:PORT"
        )
    return url


def http_traces_url(endpoint: str, *, what: str = "endpoint") -> str:
    """An OTLP/HTTP base URL (or ``HOST:PORT``) with ``/v1/traces`` appended once."""
    base = parse(endpoint, what=what).rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def grpc_target(endpoint: str, *, what: str = "endpoint") -> str:
    """An OTLP/gRPC endpoint; ``HOST:PORT`` means plaintext (the sidecar), ``https://`` TLS.

    The exporter would otherwise read a scheme-less ``localhost:4317`` as a TLS target.
    """
    return parse(endpoint, what=what)


def http_from_environment(environ: Mapping[str, str] | None = None) -> FromVariable | None:
    """The OTLP/HTTP traces URL the standard variables set, or None when neither is set.

    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is the full URL, used as it is;
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base URL that gets ``/v1/traces``, as the exporter does.
    A bare ``HOST:PORT`` in either is a base: it is evidently not the full URL of a signal.

    Raises:
        EndpointError: the variable's value is not an http(s) URL (the message names it).
    """
    env = os.environ if environ is None else environ
    for variable, is_base in (
        (envvars.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, False),
        (envvars.OTEL_EXPORTER_OTLP_ENDPOINT, True),
    ):
        value = env.get(variable, "").strip()
        if value:
            bare = "://" not in value
            if is_base or (bare and "/" not in value):
                return FromVariable(variable, http_traces_url(value, what=variable), bare)
            return FromVariable(variable, parse(value, what=variable), bare)
    return None
