"""Sidecar enrichment: stamp the pod's own Kubernetes attributes on resources that lack them.

A sidecar shares its pod with the application, so the pod identity the library's detector finds
for the sidecar (``podtrace.detect_kubernetes_attributes``) is the application's too.  Apps
in other languages, or apps that cannot change their code, then still carry pod metadata.  The
enrichment edits the lean protobuf request itself, before spans are extracted, so that what is
forwarded and what is decoded agree.  Attributes the app already set always win; an SDK's default
``service.name`` (``unknown_service...``) counts as missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from podtrace_collector.receive.lean import LeanResource, OtlpRequest

logger = logging.getLogger(__name__)

DetectedValue = str | Sequence[str]

# What the detector finds about the sidecar's own container or process, not about the pod: stamping
# these on the app's spans would name the wrong container (the pause-container mistake in another
# form), so the sidecar leaves them to the app's own SDK.
NOT_POD_WIDE = frozenset(
    {
        "container.id",
        "container.image.name",
        "container.image.tags",
        "k8s.container.name",
        "service.instance.id",
    }
)


def detect_pod_attributes() -> dict[str, DetectedValue]:
    """The pod's attributes from the library's detector, or ``{}`` when it is unavailable.

    Never raises: a missing detector or a detection failure is logged once and yields ``{}``.
    """
    try:
        from podtrace import detect_kubernetes_attributes
    except ImportError as exc:
        logger.warning("kubernetes detector unavailable, sidecar will not enrich: %s", exc)
        return {}
    try:
        detected = detect_kubernetes_attributes()
    except Exception:
        logger.warning("kubernetes detection failed, sidecar will not enrich", exc_info=True)
        return {}
    return {
        str(k): v
        for k, v in dict(detected).items()
        if isinstance(v, str | list | tuple) and k not in NOT_POD_WIDE
    }


class Enricher:
    """Adds the given attributes to every resource in a lean request that lacks them.

    Args:
        attributes: the pod's attributes (``detect_pod_attributes()``, or fixed ones in tests).
    """

    def __init__(self, attributes: Mapping[str, DetectedValue]) -> None:
        self.attributes = dict(attributes)
        # Serialized once: appending bytes to the lean resource is all ``apply`` has to do.
        self._encoded = {key: _encode(key, value) for key, value in self.attributes.items()}

    def __bool__(self) -> bool:
        return bool(self._encoded)

    def apply(self, request: OtlpRequest) -> int:
        """Stamp every ``ResourceSpans`` of a ``LeanRequest`` in place; returns attributes added."""
        return self.stamp(rs.resource for rs in request.resource_spans)

    def stamp(self, resources: Iterable[LeanResource]) -> int:
        """Stamp lean resources in place (any signal's: they share one shape); returns how many
        attributes were added."""
        if not self._encoded:
            return 0
        added = 0
        for resource in resources:
            attributes = resource.attributes
            present, default_name_at = _present_keys(attributes)
            if default_name_at is not None and "service.name" in self._encoded:
                del attributes[default_name_at]
            for key, encoded in self._encoded.items():
                if key not in present:
                    attributes.append(encoded)
                    added += 1
        return added


def _present_keys(serialized: Sequence[bytes]) -> tuple[set[str], int | None]:
    """The keys present, and the index of an SDK-default ``service.name`` if there is one."""
    keys: set[str] = set()
    default_name_at = None
    for index, raw in enumerate(serialized):
        try:
            kv = KeyValue.FromString(raw)
        except Exception:  # a broken attribute is the decoder's to report
            continue
        if kv.key == "service.name" and kv.value.string_value.startswith("unknown_service"):
            default_name_at = index
        else:
            keys.add(kv.key)
    return keys, default_name_at


def _encode(key: str, value: DetectedValue) -> bytes:
    if isinstance(value, str):
        any_value = AnyValue(string_value=value)
    else:
        items = [AnyValue(string_value=str(item)) for item in value]
        any_value = AnyValue(array_value=ArrayValue(values=items))
    return bytes(KeyValue(key=key, value=any_value).SerializeToString())
