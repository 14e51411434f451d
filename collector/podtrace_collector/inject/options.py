"""What `podtrace inject` adds: its flags, overridden per pod by `podtrace.io/*` annotations."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podtrace import __version__
from podtrace_collector.errors import InjectError

# Annotations on a pod template (or a pod).  Values are strings, as Kubernetes requires.
INJECT = "podtrace.io/inject"  # "false": leave this pod alone; "true": opt in (webhook)
GATEWAY = "podtrace.io/gateway"  # the sidecar's --forward target
IMAGE = "podtrace.io/image"  # the sidecar's image
SIDECAR = "podtrace.io/sidecar"  # "native" (init container) or "container"
PYTHON = "podtrace.io/python"  # container names to run under `podtrace run`, or "true" for all
FORWARD_TOKEN_SECRET = "podtrace.io/forward-token-secret"  # "<secret>/<key>"
STATUS = "podtrace.io/status"  # written by podtrace: what it added, so that --remove can undo it
OPENTELEMETRY_SIDECAR = "sidecar.opentelemetry.io/inject"  # the OpenTelemetry Operator's

DEFAULT_IMAGE = f"ghcr.io/podtrace/collector:{__version__}"
DEFAULT_GATEWAY = "podtrace-gateway.podtrace.svc.cluster.local:4317"
SIDECAR_MODES = ("native", "container")
ALL = "*"

_TOKEN = re.compile(r"^\S+$")
_SECRET_KEY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[-._a-zA-Z0-9]+$")


@dataclass(frozen=True)
class InjectOptions:
    """The settings of one injection.

    Attributes:
        image: the sidecar's container image.
        gateway: where the sidecar forwards spans (its ``--forward``).
        sidecar: ``native`` (an init container with ``restartPolicy: Always``, Kubernetes >= 1.29)
            or ``container`` (a plain container, for older clusters).
        python: names of the containers whose command is wrapped in ``podtrace run --``;
            ``"*"`` wraps every app container.
        forward_token_secret: ``<secret>/<key>`` holding the gateway's OTLP token, if it has one.
    """

    image: str = DEFAULT_IMAGE
    gateway: str = DEFAULT_GATEWAY
    sidecar: str = "native"
    python: frozenset[str] = frozenset()
    forward_token_secret: str | None = None

    def __post_init__(self) -> None:
        _check(self.image, _TOKEN, "sidecar image (one word, no spaces)")
        _check(self.gateway, _TOKEN, "gateway address (HOST:PORT or a URL)")
        if self.sidecar not in SIDECAR_MODES:
            raise InjectError(f"the sidecar must be 'native' or 'container', not {self.sidecar!r}")
        if self.forward_token_secret is not None:
            _check(self.forward_token_secret, _SECRET_KEY, "forward token secret (SECRET/KEY)")

    @property
    def native(self) -> bool:
        return self.sidecar == "native"

    def wraps(self, container_name: str) -> bool:
        """Whether this container's command is to run under ``podtrace run``."""
        return ALL in self.python or container_name in self.python

    def for_template(self, annotations: Mapping[str, Any]) -> InjectOptions:
        """These options with a pod template's ``podtrace.io/*`` annotations applied over them."""
        changes: dict[str, Any] = {}
        fields = {IMAGE: "image", GATEWAY: "gateway", SIDECAR: "sidecar"}
        fields[FORWARD_TOKEN_SECRET] = "forward_token_secret"
        for annotation, field in fields.items():
            if annotation in annotations:
                changes[field] = annotation_text(annotations, annotation)
        if PYTHON in annotations:
            changes["python"] = parse_python(annotation_text(annotations, PYTHON))
        try:
            return dataclasses.replace(self, **changes)
        except InjectError as exc:
            raise InjectError(f"{exc} (from the podtrace.io/ annotations)") from None


def parse_python(text: str) -> frozenset[str]:
    """``"true"`` or ``"*"``: every container; ``"false"`` or empty: none; else a comma list."""
    value = text.strip()
    if value.lower() in {"true", ALL}:
        return frozenset({ALL})
    if value.lower() in {"false", ""}:
        return frozenset()
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def annotation_text(annotations: Mapping[str, Any], key: str) -> str:
    """An annotation's value as text (YAML may have turned an unquoted ``false`` into a bool)."""
    value = annotations[key]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _check(value: str, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(value, str) or not pattern.match(value):
        raise InjectError(f"invalid {what}: {value!r}")
