"""Kubernetes manifests as YAML: documents in and out with key order kept, ``kind: List``, and
where each kind keeps its pod template."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from podtrace_collector.errors import InjectError, ManifestError
from podtrace_collector.inject.mutate import Outcome, Template

Change = Callable[[Template], tuple[Template, Outcome]]

# kind -> the keys leading from the object to its pod template (metadata + spec).
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "Rollout": ("spec", "template"),  # Argo Rollouts
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """YAML as the Kubernetes tools read it: a date-like scalar stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# A bare `=` is YAML 1.1's "value" tag, which PyYAML cannot construct: it is just the string "=".
def _construct_value(loader: _Loader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:value", _construct_value)


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks, as people write manifests."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def load_documents(text: str, *, source: str) -> list[dict[str, Any]]:
    """The objects of a YAML stream (``---``-separated documents); empty documents are dropped.

    Raises:
        ManifestError: invalid YAML, or a document that is not a mapping.
    """
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: invalid YAML: {_yaml_problem(exc)}") from None
    objects = []
    for number, document in enumerate(documents, 1):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ManifestError(
                f"{source}: document {number} is not a Kubernetes object (a mapping with kind)"
            )
        objects.append(document)
    return objects


def dump_documents(objects: list[dict[str, Any]]) -> str:
    """YAML for ``objects``, ``---``-separated, keys in their original order."""
    if not objects:
        return ""
    text: str = yaml.dump_all(
        objects,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 16,  # never fold long strings (commands, URLs) over several lines
    )
    return text


def transform(objects: list[dict[str, Any]], change: Change) -> tuple[list[Any], list[str]]:
    """Apply ``change`` to every pod template; return the new objects and one report line each.

    Raises:
        InjectError: ``change`` refused a template; the message names the object.
    """
    report: list[str] = []
    changed = [_transform(obj, change, report, f"document {n}") for n, obj in enumerate(objects, 1)]
    return changed, report


def _transform(obj: Any, change: Change, report: list[str], where: str) -> Any:
    if not isinstance(obj, dict):
        report.append(f"{where}: not a Kubernetes object, passed through unchanged")
        return obj
    kind = obj.get("kind")
    if kind == "List" and isinstance(obj.get("items"), list):
        items = [
            _transform(item, change, report, f"{where}, item {n}")
            for n, item in enumerate(obj["items"], 1)
        ]
        return {**obj, "items": items}
    label = describe(obj, where)
    path = TEMPLATE_PATHS.get(kind) if isinstance(kind, str) else None
    if path is None:
        report.append(f"{label}: passed through unchanged ({kind or 'no kind'}: no pod template)")
        return obj
    template = _get(obj, path)
    if template is None:
        report.append(f"{label}: passed through unchanged ({_missing_template(obj, path)})")
        return obj
    try:
        new, outcome = change(template)
    except InjectError as exc:
        raise InjectError(f"{label}: {exc}") from None
    report.append(f"{label}: {outcome.summary}")
    report.extend(f"{label}: note: {note}" for note in outcome.notes)
    return _put(obj, path, new)


def describe(obj: dict[str, Any], where: str = "") -> str:
    """``deployment/cart in shop``: how a report line names an object."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = metadata.get("name") or metadata.get("generateName")  # type: ignore[union-attr]
    kind = str(obj.get("kind", "object")).lower()
    label = f"{kind}/{name}" if name else f"{where} ({kind})"
    namespace = metadata.get("namespace")  # type: ignore[union-attr]
    return f"{label} in {namespace}" if namespace else label


def _missing_template(obj: dict[str, Any], path: tuple[str, ...]) -> str:
    ref = obj.get("spec", {}).get("workloadRef") if isinstance(obj.get("spec"), dict) else None
    if isinstance(ref, dict):  # an Argo Rollout that borrows a Deployment's template
        return f"its pods come from {ref.get('kind')}/{ref.get('name')}: inject that one"
    return f"no {'.'.join(path)}"


def _get(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _put(obj: dict[str, Any], path: tuple[str, ...], value: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with ``value`` at ``path``; keys keep their places."""
    if not path:
        return value
    return {**obj, path[0]: _put(obj[path[0]], path[1:], value)}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc)
