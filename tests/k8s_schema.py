"""Kubernetes objects checked against the Kubernetes OpenAPI schemas, without a cluster.

A server-side dry run needs an API server; the schemas it validates against are published as JSON
Schema by the ``kubernetes-validate`` package (one set per Kubernetes minor version).  Validation
is strict: a misspelt or misplaced field is an error, as ``kubectl apply --validate=strict`` makes
it.  Custom resources (Argo Rollouts) have no schema there: only their ``metadata`` is checked,
as an ObjectMeta.

Use ``schema_problems(obj)`` for a list of readable errors (empty: valid in every version of
``KUBERNETES_VERSIONS``), ``load_documents`` to read a multi-document YAML file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version

# The oldest release the examples support (native sidecars: restartPolicy on an init container),
# and the newest the schema package knows.
MIN_KUBERNETES = "1.29"
KUBERNETES_VERSIONS = (MIN_KUBERNETES, latest_version())

# API groups of custom resources the examples use; their objects get only a metadata check.
CUSTOM_GROUPS = frozenset({"argoproj.io"})

# Kinds that live outside any namespace (the ones the examples could use).
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
     "PersistentVolume", "StorageClass", "PriorityClass", "Node"}
)  # fmt: skip


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a manifest file, in order."""
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def describe(obj: dict[str, Any]) -> str:
    """``Kind namespace/name`` (or ``Kind name``) for messages."""
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')} {where}{meta.get('name', '?')}"


def group_of(obj: dict[str, Any]) -> str:
    """The API group of an object (``""`` for the core group)."""
    api_version = str(obj.get("apiVersion", ""))
    return api_version.rpartition("/")[0]


def schema_problems(
    obj: dict[str, Any], versions: Iterable[str] = KUBERNETES_VERSIONS
) -> list[str]:
    """Why *obj* does not validate against the schema of its kind, per Kubernetes version."""
    problems = []
    for version in versions:
        problem = _problem(obj, version)
        if problem:
            problems.append(f"{describe(obj)} (Kubernetes {version}): {problem}")
    return problems


def _problem(obj: dict[str, Any], version: str) -> str | None:
    if not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        return "apiVersion and kind are required"
    if group_of(obj) in CUSTOM_GROUPS:
        # No schema for a custom resource: check what every object shares, its metadata.
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata")}
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "(top)"
        return f"{path}: {exc.message}"
    except SchemaNotFoundError as exc:
        return exc.message
    return None
