"""Admission: an ``AdmissionReview`` (v1) for a pod in, podtrace's mutation as a JSON Patch out.

The decision never blocks a pod: whatever happens, the answer is ``allowed``, with a JSON Patch
when podtrace is added and a warning (shown by kubectl) when it could not be.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from podtrace_collector.errors import InjectError, ReviewError
from podtrace_collector.inject.mutate import inject_template
from podtrace_collector.inject.options import INJECT, STATUS, InjectOptions, annotation_text
from podtrace_collector.inject.patch import make_patch

logger = logging.getLogger(__name__)

API_VERSION = "admission.k8s.io/v1"
PART_OF = "app.kubernetes.io/part-of"  # podtrace's own pods carry part-of: podtrace
ALWAYS_EXCLUDED = frozenset({"kube-system"})


@dataclass(frozen=True)
class Policy:
    """Which pods the webhook injects, and how.

    Attributes:
        options: what to inject (as ``podtrace inject``'s flags).
        exclude_namespaces: namespaces never touched (``kube-system`` always is).
    """

    options: InjectOptions = field(default_factory=InjectOptions)
    exclude_namespaces: frozenset[str] = ALWAYS_EXCLUDED

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_namespaces", self.exclude_namespaces | ALWAYS_EXCLUDED)


def review(body: Any, policy: Policy, *, namespace_wide: bool) -> dict[str, Any]:
    """Answer one ``AdmissionReview``.

    Args:
        body: the decoded JSON request.
        policy: the webhook's settings.
        namespace_wide: the pod's namespace opted in (inject unless the pod opts out); otherwise
            only pods annotated ``podtrace.io/inject: "true"`` are injected.

    Raises:
        ReviewError: ``body`` is not an AdmissionReview v1 request.
    """
    request = _request(body)
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    warnings: list[str] = []
    patch = _decide(request, policy, namespace_wide, warnings)
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if warnings:
        response["warnings"] = [f"podtrace: {text}" for text in warnings]
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def _decide(
    request: dict[str, Any], policy: Policy, namespace_wide: bool, warnings: list[str]
) -> list[dict[str, Any]]:
    pod = request.get("object")
    kind = request.get("kind") or {}
    is_new_pod = request.get("operation") == "CREATE" and kind.get("kind") == "Pod"
    if not is_new_pod or not isinstance(pod, dict):
        return []
    metadata = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
    namespace = request.get("namespace") or metadata.get("namespace")  # type: ignore[union-attr]
    labels = metadata.get("labels") or {}  # type: ignore[union-attr]
    if namespace in policy.exclude_namespaces or labels.get(PART_OF) == "podtrace":
        return []
    annotations = metadata.get("annotations") or {}  # type: ignore[union-attr]
    if STATUS in annotations:  # its template was injected already (podtrace inject)
        return []
    if not namespace_wide and (
        INJECT not in annotations or annotation_text(annotations, INJECT).lower() != "true"
    ):
        return []
    name = metadata.get("name") or metadata.get("generateName") or "?"  # type: ignore[union-attr]
    try:
        mutated, outcome = inject_template(pod, policy.options)
    except InjectError as exc:
        warnings.append(f"not injected: {exc}")
        logger.warning("pod not injected", extra={"pod": f"{namespace}/{name}", "reason": str(exc)})
        return []
    except Exception:  # a bug must not keep pods from starting: admit the pod as it is
        warnings.append("not injected: the webhook failed, see its log")
        logger.exception("pod not injected", extra={"pod": f"{namespace}/{name}"})
        return []
    warnings.extend(outcome.notes)
    logger.info("pod admitted", extra={"pod": f"{namespace}/{name}", "outcome": outcome.summary})
    return make_patch(pod, mutated)


def _request(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("kind") != "AdmissionReview":
        raise ReviewError("the body is not an AdmissionReview")
    if body.get("apiVersion") != API_VERSION:
        raise ReviewError(f"only {API_VERSION} AdmissionReviews are served")
    request = body.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise ReviewError("the AdmissionReview has no request with a uid")
    return request
