"""Reading the pod's identity from files: downward-API volume, service account, cgroup, mountinfo.

Every function here is pure over file contents (``parse_*``) or a thin reader around one
(``read_*``), so tests drive the parsers with recorded samples and the readers with fake pod
filesystems built in ``tmp_path``.

Container ids: a pod's *sandbox* (pause) container owns ``/etc/hostname``, ``/etc/resolv.conf``
and, under containerd, the whole ``.../sandboxes/<id>/`` directory. Detectors that take the id
from those mount sources report the pause container, which is wrong. podtrace only trusts the
process's own cgroup path (a process always lives in its own container's cgroup, never the
sandbox's) and mount sources that are per-container by construction, and drops any id it has
also seen as a sandbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HEX64 = r"[0-9a-f]{64}"
_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"

# A cgroup path segment naming a container: runtime-prefixed systemd scopes, or a bare id
# (cgroupfs driver: /kubepods/burstable/pod<uid>/<id>, /docker/<id>).
_CGROUP_CONTAINER = re.compile(
    rf"^(?:(?:cri-containerd|crio|docker|libpod)-)?({_HEX64})(?:\.scope)?$"
)
_CGROUP_POD = re.compile(rf"pod({_UID})(?:\.slice)?$")
_KUBELET_POD_DIR = re.compile(rf"/kubelet/pods/({_UID})/")
_KUBELET_CONTAINER_DIR = re.compile(
    rf"/kubelet/pods/{_UID}/containers/([a-z0-9]([-a-z0-9]*[a-z0-9])?)/"
)
# Sources that name a container id and belong to that container alone.
_PER_CONTAINER_SOURCE = re.compile(rf"/io\.containerd\.grpc\.v1\.cri/containers/({_HEX64})/")
# Sources owned by the pod sandbox: any id seen here is the pause container's.
_SANDBOX_SOURCE = re.compile(rf"/sandboxes/({_HEX64})/")
# Sources that are per-container for plain Docker but come from the sandbox under Kubernetes.
_DOCKER_CONTAINER_SOURCE = re.compile(rf"/docker/containers/({_HEX64})/")
_CRIO_CONTAINER_SOURCE = re.compile(rf"/overlay-containers/({_HEX64})/userdata/")
_SANDBOX_TARGETS = frozenset({"/etc/hostname", "/etc/resolv.conf", "/etc/hosts"})


@dataclass(frozen=True, slots=True)
class ProcIdentity:
    """What the process's own cgroup and mount tables say about its pod and container."""

    pod_uid: str | None = None
    container_id: str | None = None
    container_name: str | None = None
    sandbox_ids: frozenset[str] = frozenset()


# --- downward-API files --------------------------------------------------------------------------

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def unquote_go(text: str) -> str:
    """Decode a Go ``strconv.Quote`` string body (the downward-API value format).

    Raises:
        ValueError: on a malformed escape.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(text):
            raise ValueError("dangling backslash")
        esc = text[i + 1]
        i += 2
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
        elif esc in "\\\"'":
            out.append(esc)
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            out.append(chr(int(text[i : i + width], 16)))
            i += width
        elif esc in "01234567":
            out.append(chr(int(text[i - 1 : i + 2], 8)))
            i += 2
        else:
            raise ValueError(f"unknown escape \\{esc}")
    return "".join(out)


def parse_downward_map(text: str) -> dict[str, str]:
    """Parse a downward-API ``labels``/``annotations`` file: one ``key="value"`` per line.

    Malformed lines are skipped (the caller logs once); values are Go-quoted strings.
    """
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        raw = raw.strip()
        if not sep or not key.strip() or len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
            continue
        try:
            result[key.strip()] = unquote_go(raw[1:-1])
        except ValueError:
            continue
    return result


def read_text(path: Path) -> str | None:
    """Return a small text file's content, or None when it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_value(path: Path) -> str | None:
    """Return a one-value file (downward-API ``name``, SA ``namespace``) stripped, or None."""
    text = read_text(path)
    value = text.strip() if text is not None else ""
    return value or None


# --- cgroup and mountinfo ------------------------------------------------------------------------


def _normalise_uid(raw: str) -> str:
    # The systemd cgroup driver writes pod uids with underscores instead of dashes.
    return raw.replace("_", "-")


def parse_cgroup(text: str) -> ProcIdentity:
    """Pod uid and container id from ``/proc/self/cgroup`` (v1 lines or the v2 ``0::`` line)."""
    pod_uid: str | None = None
    container_id: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        uid, cid = _from_cgroup_path(parts[2])
        pod_uid = pod_uid or uid
        container_id = container_id or cid
    return ProcIdentity(pod_uid=pod_uid, container_id=container_id)


def _from_cgroup_path(cgroup_path: str) -> tuple[str | None, str | None]:
    segments = [s for s in cgroup_path.strip().split("/") if s]
    pod_uid: str | None = None
    for seg in segments:
        if match := _CGROUP_POD.search(seg):
            pod_uid = _normalise_uid(match.group(1))
    container_id: str | None = None
    # Only the leaf names the container; "crio-conmon-<id>" is CRI-O's monitor, not the app.
    if segments and (match := _CGROUP_CONTAINER.match(segments[-1])):
        container_id = match.group(1)
    return pod_uid, container_id


def parse_mountinfo(text: str, *, in_kubernetes: bool) -> ProcIdentity:
    """Pod uid, container id and container name from ``/proc/self/mountinfo``.

    ``in_kubernetes`` matters for Docker: outside Kubernetes ``/var/lib/docker/containers/<id>/``
    is the container's own directory; inside a pod it is the sandbox's.
    """
    pod_uid: str | None = None
    container_name: str | None = None
    candidates: list[str] = []
    sandboxes: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        root, target = fields[3], fields[4]
        if match := _KUBELET_POD_DIR.search(root):
            pod_uid = pod_uid or _normalise_uid(match.group(1))
        if match := _KUBELET_CONTAINER_DIR.search(root):
            container_name = container_name or match.group(1)
        if _is_cgroup_mount(fields):
            uid, cid = _from_cgroup_path(root)
            pod_uid = pod_uid or uid
            if cid:
                candidates.append(cid)
        _collect_ids(root, target, in_kubernetes, candidates, sandboxes)
    container_id = next((c for c in candidates if c not in sandboxes), None)
    return ProcIdentity(pod_uid, container_id, container_name, frozenset(sandboxes))


def _is_cgroup_mount(fields: list[str]) -> bool:
    try:
        sep = fields.index("-")
    except ValueError:
        return False
    return fields[sep + 1 : sep + 2] in (["cgroup"], ["cgroup2"])


def _collect_ids(
    root: str, target: str, in_kubernetes: bool, candidates: list[str], sandboxes: set[str]
) -> None:
    if match := _SANDBOX_SOURCE.search(root):
        sandboxes.add(match.group(1))
    if match := _PER_CONTAINER_SOURCE.search(root):
        candidates.append(match.group(1))
    for pattern in (_DOCKER_CONTAINER_SOURCE, _CRIO_CONTAINER_SOURCE):
        if match := pattern.search(root):
            if not in_kubernetes:
                candidates.append(match.group(1))
            elif target in _SANDBOX_TARGETS:
                # Inside a pod the hostname/resolv.conf files are the sandbox's; any other
                # mount from these directories is not trusted either way.
                sandboxes.add(match.group(1))


def read_proc_identity(cgroup_path: Path, mountinfo_path: Path) -> ProcIdentity:
    """Combine cgroup (preferred) and mountinfo evidence; unreadable files count as empty."""
    cgroup_text = read_text(cgroup_path) or ""
    mounts_text = read_text(mountinfo_path) or ""
    from_cgroup = parse_cgroup(cgroup_text)
    in_k8s = (
        from_cgroup.pod_uid is not None
        or "kubepods" in cgroup_text
        or "/kubelet/pods/" in mounts_text
    )
    from_mounts = parse_mountinfo(mounts_text, in_kubernetes=in_k8s)
    container_id = from_cgroup.container_id or from_mounts.container_id
    if container_id in from_mounts.sandbox_ids:
        container_id = None
    return ProcIdentity(
        pod_uid=from_cgroup.pod_uid or from_mounts.pod_uid,
        container_id=container_id,
        container_name=from_mounts.container_name,
        sandbox_ids=from_mounts.sandbox_ids,
    )
