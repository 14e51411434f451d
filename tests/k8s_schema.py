"""Kubernetes objects checked against the Kubernetes OpenAPI schemas, without a cluster.

A server-side dry run needs an API server; the schemas it validates against are published as JSON
Schema by the ``kubernetes-validate`` package (one set per Kubernetes minor version).  Validation
is strict: a misspelt or misplaced field is an error, as ``kubectl apply --validate=strict`` makes
it.  Custom resources (Argo Rollouts, cert-manager) have no schema there: only their ``metadata``
is checked, as an ObjectMeta, and ``pod_template_problems`` checks a Rollout's pod template.

Use ``schema_problems(obj)`` for a list of readable errors (empty: valid in every version of
``KUBERNETES_VERSIONS``), ``load_documents`` to read a multi-document YAML file, ``validate`` and
``validate_pod_template`` to assert.  Validators are built once per schema and version (the shared
definitions are 2 MB of JSON), so property tests can validate thousands of objects.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import yaml
from kubernetes_validate.utils import all_versions, latest_version, major_minor
from packaging.version import Version

# The oldest release the examples support (native sidecars: restartPolicy on an init container),
# and the newest the schema package knows.
MIN_KUBERNETES = "1.29"
KUBERNETES_VERSIONS = (MIN_KUBERNETES, latest_version())

# API groups of custom resources the examples use; their objects get only a metadata check.
CUSTOM_GROUPS = frozenset({"argoproj.io", "cert-manager.io"})

# Kinds that live outside any namespace (the ones the examples could use).
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
     "PersistentVolume", "StorageClass", "PriorityClass", "Node",
     "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ClusterIssuer"}
)  # fmt: skip

_SCHEMAS = resources.files("kubernetes_validate") / "kubernetes-json-schema"


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


def pod_template_problems(
    template: dict[str, Any], versions: Iterable[str] = KUBERNETES_VERSIONS
) -> list[str]:
    """Why a pod template (``metadata`` + ``spec``) is not a valid ``PodTemplateSpec``."""
    problems = []
    for version in versions:
        problem = _first_error(_validator(version, "podtemplatespec-v1"), template)
        if problem:
            problems.append(f"pod template (Kubernetes {version}): {problem}")
    return problems


def has_schema(obj: dict[str, Any]) -> bool:
    """Whether the schemas cover this object's kind (custom resources: no)."""
    return _schema_name(obj) is not None and group_of(obj) not in CUSTOM_GROUPS


def validate(obj: dict[str, Any]) -> None:
    """Assert that *obj* is valid in every version of ``KUBERNETES_VERSIONS``."""
    problems = schema_problems(obj)
    assert not problems, "\n".join(problems)


def validate_pod_template(template: dict[str, Any]) -> None:
    """Assert that *template* is a valid ``PodTemplateSpec`` in every supported version."""
    problems = pod_template_problems(template)
    assert not problems, "\n".join(problems)


def _problem(obj: dict[str, Any], version: str) -> str | None:
    if not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        return "apiVersion and kind are required"
    if group_of(obj) in CUSTOM_GROUPS:
        # No schema for a custom resource: check what every object shares, its metadata.
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata")}
    name = _schema_name(obj)
    if name is None or not (_schema_dir(version) / f"{name}.json").is_file():
        return (
            f"Couldn't find schema for kind {obj['kind']} with api version {obj['apiVersion']} "
            f"for kubernetes version {major_minor(version)}"
        )
    return _first_error(_validator(version, name), obj)


def _first_error(validator: jsonschema.protocols.Validator, obj: Any) -> str | None:
    error = next(iter(validator.iter_errors(obj)), None)
    if error is None:
        return None
    return f"{'.'.join(str(p) for p in error.path) or '(top)'}: {error.message}"


def _schema_name(obj: dict[str, Any]) -> str | None:
    """kubernetes-validate's file name: ``<kind>-<group without its domain>-<version>``."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}"


def _schema_dir(version: str) -> Any:
    """The strict schemas of the newest release not newer than *version*."""
    wanted = Version(major_minor(version))
    chosen = [v for v in all_versions() if Version(major_minor(v)) <= wanted][-1]
    return _SCHEMAS / f"v{chosen}-local-strict"


@functools.cache
def _validator(version: str, name: str) -> jsonschema.protocols.Validator:
    directory = _schema_dir(version)
    schema = json.loads((directory / f"{name}.json").read_text())
    definitions = _definitions(str(directory))
    registry = referencing.Registry().with_resources(
        [
            (schema["$id"], referencing.Resource.from_contents(schema)),
            (definitions["$id"], referencing.Resource.from_contents(definitions)),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _definitions(directory: str) -> dict[str, Any]:
    path = _SCHEMAS / Path(directory).name / "_definitions.json"
    definitions: dict[str, Any] = json.loads(path.read_text())
    return definitions
