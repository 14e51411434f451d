"""Query parameters naming a workload: ``workload=NS/NAME`` or ``service=NAME[&version=V]``."""

from __future__ import annotations

import re

from podtrace_collector.aggregate.window import Registry
from podtrace_collector.errors import BadRequest, UnknownRevision, UnknownWorkload
from podtrace_collector.query.common import require_revisions

_MAX_NAME = 320
# NAMESPACE/NAME: a namespace without "/", a name (a service.name may hold "/"), no control chars.
_WORKLOAD = re.compile(r"[^/\x00-\x1f\x7f]+/[^\x00-\x1f\x7f]+")


def resolve_workload(
    registry: Registry,
    *,
    workload: str | None = None,
    service: str | None = None,
    version: str | None = None,
) -> tuple[str, str | None]:
    """Turn the ``workload=`` or ``service=[&version=]`` parameters into (workload, revision).

    Args:
        registry: the revision registry.
        workload: ``namespace/name``.
        service: a ``service.name``, for services outside Kubernetes (or any service).
        version: a ``service.version``: picks the newest revision with that version.

    Returns:
        The workload name and the revision the version selects (``None`` without a version).

    Raises:
        BadRequest: a malformed or ambiguous name, or both or neither of workload and service.
        UnknownWorkload: no retained workload of that name or service.
        UnknownRevision: no revision of that version.
    """
    if (workload is None) == (service is None):
        raise BadRequest(
            "give workload=NAMESPACE/NAME, or service=NAME for a service outside Kubernetes"
            + (" (not both)" if workload is not None else "")
        )
    name = check_workload(workload) if workload is not None else _by_service(registry, service)
    revs = require_revisions(registry, name)
    if version is None:
        return name, None
    matching = [r for r, st in revs if st.version == version]
    if not matching:
        known = sorted({st.version for _, st in revs if st.version})
        raise UnknownRevision(
            f"workload {name!r} has no revision with version {version!r} (known: {known})",
        )
    return name, matching[-1]


def _by_service(registry: Registry, service: str | None) -> str:
    assert service is not None  # resolve_workload checked that one of the two is given
    if not service.strip() or len(service) > _MAX_NAME:
        raise BadRequest(f"malformed service name {service[:_MAX_NAME]!r}")
    found = sorted({w for (w, _), st in registry.items() if st.service == service})
    if not found:  # a workload whose spans carry no service.name: match its name part
        found = sorted({w for (w, _) in registry if w.split("/", 1)[-1] == service})
    if not found:
        raise UnknownWorkload(
            f"unknown service {service!r}: no retained workload runs it",
        )
    if len(found) > 1:
        raise BadRequest(f"service {service!r} runs in several workloads {found}: use workload=")
    return found[0]


def check_workload(workload: str) -> str:
    """Return ``workload`` if it is a well-formed ``namespace/name``, else raise 400."""
    if (
        len(workload) > _MAX_NAME
        or workload != workload.strip()
        or not _WORKLOAD.fullmatch(workload)
    ):
        raise BadRequest(f"malformed workload {workload[:_MAX_NAME]!r}: expected NAMESPACE/NAME")
    return workload
