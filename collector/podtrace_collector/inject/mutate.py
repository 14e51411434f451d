"""Adding podtrace to a pod template, and taking it out again.

A pod template is a mapping with ``metadata`` and ``spec`` (a Deployment's ``spec.template``, or a
Pod itself).  Both functions are pure: they return a new template and say what they did.
What the pod already has always wins: an existing ``POD_NAME`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``
is kept, and ``podtrace.io/status`` records only what podtrace itself added.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from podtrace_collector.errors import InjectError
from podtrace_collector.inject.checks import all_containers, check_conflicts, reason_to_skip
from podtrace_collector.inject.options import (
    ALL,
    INJECT,
    PYTHON,
    STATUS,
    InjectOptions,
    annotation_text,
)
from podtrace_collector.inject.sidecar import (
    APP_ENDPOINTS,
    ENDPOINT,
    PODINFO_DIR,
    PODINFO_VOLUME,
    PROTOCOL,
    RUN_PREFIX,
    SIDECAR_NAME,
    app_env,
    podinfo_mount,
    podinfo_volume,
    sidecar_container,
)
from podtrace_collector.inject.status import (
    ANNOTATIONS,
    ENV,
    INIT_CONTAINERS,
    METADATA,
    MOUNTS,
    VOLUMES,
    Added,
    Status,
)

Template = dict[str, Any]
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


@dataclass(frozen=True)
class Outcome:
    """What happened to one pod template: ``summary`` for the report, ``notes`` worth a warning."""

    changed: bool
    summary: str
    notes: tuple[str, ...] = ()


def inject_template(template: Template, options: InjectOptions) -> tuple[Template, Outcome]:
    """Add podtrace to a pod template; injecting an injected template again changes nothing.

    Args:
        template: a mapping with ``metadata`` and ``spec`` (left untouched).
        options: the flags' settings; the template's ``podtrace.io/*`` annotations override them.

    Returns:
        The new template and what was done (skipped templates come back equal to the input).

    Raises:
        InjectError: the template cannot take podtrace as asked (a port conflict, a bad annotation).
    """
    annotations = _annotations(template)
    choice = annotation_text(annotations, INJECT).lower() if INJECT in annotations else "true"
    if choice == "false":
        return template, Outcome(False, f'skipped: opted out ({INJECT}: "false")')
    if choice != "true":
        raise InjectError(f'{INJECT} must be "true" or "false", not {choice!r}')
    opts = options.for_template(annotations)
    original = template
    if STATUS in annotations:  # injected before: start again from the original, with these options
        template, _ = remove_template(template)
    template = copy.deepcopy(template)
    spec = _spec(template)
    reason = reason_to_skip(spec)
    if reason:
        return original, Outcome(False, f"skipped: {reason}")
    check_conflicts(_annotations(template), spec, opts)
    notes = _add(template, spec, opts)
    if template == original:
        return original, Outcome(False, "unchanged: already injected", notes)
    return template, Outcome(True, "injected", notes)


def remove_template(template: Template) -> tuple[Template, Outcome]:
    """Take out exactly what ``inject_template`` added, as recorded in ``podtrace.io/status``."""
    if STATUS not in _annotations(template):
        return template, Outcome(False, "unchanged: not injected by podtrace")
    template = copy.deepcopy(template)
    metadata = template[METADATA]
    status = Status.from_json(metadata["annotations"][STATUS])
    spec = _spec(template)
    holder = spec.get(status.sidecar) or []
    spec[status.sidecar] = [c for c in holder if not _named(c, SIDECAR_NAME)]
    _drop_if_empty(spec, "initContainers", INIT_CONTAINERS in status.created)
    for container in spec["containers"]:
        added = status.containers.get(container["name"])
        if added is not None:
            _undo_app(container, added)
    if status.volume:
        spec["volumes"] = [v for v in spec.get("volumes") or [] if not _named(v, PODINFO_VOLUME)]
        _drop_if_empty(spec, "volumes", VOLUMES in status.created)
    del metadata["annotations"][STATUS]
    _drop_if_empty(metadata, "annotations", ANNOTATIONS in status.created)
    _drop_if_empty(template, METADATA, METADATA in status.created)
    return template, Outcome(True, "removed")


def _add(template: Template, spec: dict[str, Any], opts: InjectOptions) -> tuple[str, ...]:
    apps: list[dict[str, Any]] = spec["containers"]
    names = [c["name"] for c in apps]
    unknown = sorted(opts.python - {ALL} - set(names))
    if unknown:
        missing = ", ".join(unknown)
        raise InjectError(f"--python/{PYTHON} names no container of this pod: {missing}")
    status = Status(sidecar="initContainers" if opts.native else "containers")
    notes = [note for container in apps for note in _add_to_app(container, opts, status)]
    volumes = spec.get("volumes") or []
    mine = [v for v in volumes if isinstance(v, dict) and v.get("name") == PODINFO_VOLUME]
    if not mine:
        _list(spec, "volumes", status.created, VOLUMES).append(podinfo_volume())
        status.volume = True
    elif "downwardAPI" not in mine[0]:
        raise InjectError(
            f"the pod has a volume named {PODINFO_VOLUME!r} that is not a downward-API volume; "
            f"podtrace mounts its own under that name at {PODINFO_DIR}: rename yours"
        )
    sidecar = sidecar_container(opts, _default_container(template, names))
    if opts.native:
        _list(spec, "initContainers", status.created, INIT_CONTAINERS).insert(0, sidecar)
    else:
        apps.append(sidecar)
    if not isinstance(template.get(METADATA), dict):
        template[METADATA] = {}
        status.created.append(METADATA)
    annotations = _annotations_of(template[METADATA], status.created)
    annotations[STATUS] = status.to_json()  # last: the record must list every key created above
    return tuple(notes)


def _add_to_app(container: dict[str, Any], opts: InjectOptions, status: Status) -> list[str]:
    added = status.containers[container["name"]] = Added()
    notes = [_add_env(container, added)]
    mounts = [m for m in container.get(MOUNTS) or [] if isinstance(m, dict)]
    if not any(_named(m, PODINFO_VOLUME) or m.get("mountPath") == PODINFO_DIR for m in mounts):
        _list(container, MOUNTS, added.created, MOUNTS).append(podinfo_mount())
        added.mount = True
    if opts.wraps(container["name"]):
        notes.append(_wrap(container, added))
    return [note for note in notes if note]


def _add_env(container: dict[str, Any], added: Added) -> str | None:
    name = container["name"]
    env = _list(container, ENV, added.created, ENV)
    have = {e["name"]: e.get("value") for e in env if isinstance(e, dict) and "name" in e}
    protocol = have.get(PROTOCOL)  # an app that speaks gRPC is pointed at the gRPC port
    for variable in app_env(name, protocol if protocol in APP_ENDPOINTS else "http/protobuf"):
        if variable["name"] not in have:
            env.append(variable)
            added.env.append(variable["name"])
    endpoint = have.get(ENDPOINT)
    if ENDPOINT in have and endpoint not in APP_ENDPOINTS.values():
        return f"container {name!r} keeps its own {ENDPOINT} ({endpoint}), not the sidecar"
    return None


def _wrap(container: dict[str, Any], added: Added) -> str | None:
    command = container.get("command")
    if not isinstance(command, list) or not command:
        return (
            f"container {container['name']!r}: its command comes from the image, so it is not "
            "wrapped in `podtrace run`: give it a `command:`, or call podtrace.init() in the app"
        )
    if command[: len(RUN_PREFIX)] != list(RUN_PREFIX):
        container["command"] = [*RUN_PREFIX, *command]
        added.wrapped = True
    return None


def _undo_app(container: dict[str, Any], added: Added) -> None:
    if added.env:
        env = container.get(ENV) or []
        container[ENV] = [
            e for e in env if not (isinstance(e, dict) and e.get("name") in added.env)
        ]
    if added.mount:
        mounts = container.get(MOUNTS) or []
        container[MOUNTS] = [m for m in mounts if not _named(m, PODINFO_VOLUME)]
    for key in (ENV, MOUNTS):
        _drop_if_empty(container, key, key in added.created)
    command = container.get("command")
    if added.wrapped and isinstance(command, list) and command[:3] == list(RUN_PREFIX):
        container["command"] = command[len(RUN_PREFIX) :]


def _default_container(template: Template, names: list[str]) -> str:
    """The container whose name the sidecar stamps: kubectl's default container, else the first."""
    chosen = _annotations(template).get(DEFAULT_CONTAINER)
    return chosen if chosen in names else names[0]


def _annotations(template: Template) -> dict[str, Any]:
    metadata = template.get(METADATA)
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if annotations is not None and not isinstance(annotations, dict):
        raise InjectError("metadata.annotations must be a mapping")
    return annotations or {}


def _spec(template: Template) -> dict[str, Any]:
    spec = template.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        raise InjectError("the pod template has no spec.containers list")
    if not isinstance(spec.get("initContainers") or [], list):  # type: ignore[union-attr]
        raise InjectError("spec.initContainers must be a list")
    for container in all_containers(spec):  # type: ignore[arg-type]
        if not isinstance(container, dict) or not isinstance(container.get("name"), str):
            raise InjectError("every container of the pod template needs a name")
    return spec  # type: ignore[return-value]


def _list(owner: dict[str, Any], key: str, created: list[str], record: str) -> list[Any]:
    """``owner[key]`` as a list, created (and recorded as created) when missing."""
    value = owner.get(key)
    if value is None:
        value = owner[key] = []
        created.append(record)
    if not isinstance(value, list):
        raise InjectError(f"{key} must be a list")
    return value


def _annotations_of(metadata: dict[str, Any], created: list[str]) -> dict[str, Any]:
    if metadata.get("annotations") is None:
        metadata["annotations"] = {}
        created.append(ANNOTATIONS)
    return metadata["annotations"]  # type: ignore[no-any-return]


def _named(item: Any, name: str) -> bool:
    return isinstance(item, dict) and item.get("name") == name


def _drop_if_empty(owner: dict[str, Any], key: str, created: bool) -> None:
    if created and not owner.get(key):
        owner.pop(key, None)
