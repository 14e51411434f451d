"""The ``podtrace.io/status`` annotation: a record of what podtrace added, so that removal is exact.

Injection never touches what the pod already had (a user's own ``POD_NAME`` wins), so removal
must know which entries are podtrace's and which keys it created: that is this record, in the
spirit of Istio's ``sidecar.istio.io/status``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from podtrace import __version__
from podtrace_collector.errors import InjectError
from podtrace_collector.inject.options import STATUS

# Template-level keys podtrace may create (and so delete again when they are empty).
METADATA = "metadata"
ANNOTATIONS = "metadata.annotations"
INIT_CONTAINERS = "spec.initContainers"
VOLUMES = "spec.volumes"
# Container-level keys.
ENV = "env"
MOUNTS = "volumeMounts"


@dataclass
class Added:
    """What podtrace added to one app container."""

    env: list[str] = field(default_factory=list)
    mount: bool = False
    wrapped: bool = False
    created: list[str] = field(default_factory=list)


@dataclass
class Status:
    """What podtrace added to one pod template."""

    sidecar: str  # the list holding the sidecar: "initContainers" or "containers"
    volume: bool = False
    containers: dict[str, Added] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """Compact JSON; fields that are false or empty are left out."""
        record: dict[str, Any] = {"version": __version__, "sidecar": self.sidecar}
        record["volume"] = self.volume
        record["containers"] = {name: _compact(vars(a)) for name, a in self.containers.items()}
        record["created"] = self.created
        return json.dumps(_compact(record), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: Any) -> Status:
        """Parse the annotation; anything that is not podtrace's own record is an error."""
        try:
            record = json.loads(text)
            containers = {
                str(name): Added(
                    env=_strings(entry.get("env", [])),
                    mount=bool(entry.get("mount", False)),
                    wrapped=bool(entry.get("wrapped", False)),
                    created=_strings(entry.get("created", [])),
                )
                for name, entry in record.get("containers", {}).items()
            }
            status = cls(
                sidecar=str(record["sidecar"]),
                volume=bool(record.get("volume", False)),
                containers=containers,
                created=_strings(record.get("created", [])),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InjectError(
                f"the {STATUS} annotation is not podtrace's record ({exc!r}): "
                "delete the annotation and podtrace's additions by hand"
            ) from None
        if status.sidecar not in {"initContainers", "containers"}:
            raise InjectError(f"the {STATUS} annotation names no sidecar list podtrace uses")
        return status


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return list(value)


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if value}
