"""Downward-API files, cgroup and mountinfo parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from podtrace._k8s_files import (
    parse_cgroup,
    parse_downward_map,
    parse_mountinfo,
    read_proc_identity,
    unquote_go,
)

UID = "5f8a1c2e-7d3b-4e9f-a1b2-c3d4e5f6a7b8"
UID_ = UID.replace("-", "_")
CTR = "3f2a9c1d4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
SANDBOX = "9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
SLICE = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"


def _v1(leaf: str) -> str:
    lines = [f"{i}:{c}:{leaf}" for i, c in ((12, "pids"), (4, "memory"), (1, "name=systemd"))]
    return "\n".join([*lines, "0::/"]) + "\n"


def _mount(root: str, target: str, fstype: str = "ext4") -> str:
    return f"1234 1200 253:1 {root} {target} rw,relatime shared:1 - {fstype} /dev/vda1 rw\n"


KUBELET_MOUNTS = (
    _mount(f"/var/lib/kubelet/pods/{UID}/etc-hosts", "/etc/hosts")
    + _mount(f"/var/lib/kubelet/pods/{UID}/containers/app/1a2b3c4d", "/dev/termination-log")
    + _mount(
        f"/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~projected/kube-api", "/var/run/secrets"
    )
)
CONTAINERD_SANDBOX = _mount(
    f"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{SANDBOX}/hostname", "/etc/hostname"
) + _mount(
    f"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{SANDBOX}/resolv.conf",
    "/etc/resolv.conf",
)
CRIO_SANDBOX = _mount(
    f"/run/containers/storage/overlay-containers/{SANDBOX}/userdata/hostname", "/etc/hostname"
) + _mount(
    f"/run/containers/storage/overlay-containers/{SANDBOX}/userdata/resolv.conf",
    "/etc/resolv.conf",
)
DOCKER_SANDBOX = _mount(f"/var/lib/docker/containers/{SANDBOX}/hostname", "/etc/hostname") + _mount(
    f"/var/lib/docker/containers/{SANDBOX}/resolv.conf", "/etc/resolv.conf"
)
CGROUP2_PRIVATE_NS = _mount("/", "/sys/fs/cgroup", "cgroup2")


@pytest.mark.parametrize(
    ("cgroup", "mountinfo", "uid", "container_id"),
    [
        pytest.param(
            _v1(f"{SLICE}/cri-containerd-{CTR}.scope"),
            KUBELET_MOUNTS + CONTAINERD_SANDBOX,
            UID,
            CTR,
            id="containerd-v1-systemd",
        ),
        pytest.param(
            f"0::{SLICE}/cri-containerd-{CTR}.scope\n",
            KUBELET_MOUNTS + CONTAINERD_SANDBOX,
            UID,
            CTR,
            id="containerd-v2-host-cgroupns",
        ),
        pytest.param(
            "0::/\n",
            KUBELET_MOUNTS + CONTAINERD_SANDBOX + CGROUP2_PRIVATE_NS,
            UID,
            None,
            id="containerd-v2-private-cgroupns-never-the-sandbox",
        ),
        pytest.param(
            _v1(f"{SLICE}/crio-{CTR}.scope"),
            KUBELET_MOUNTS + CRIO_SANDBOX,
            UID,
            CTR,
            id="crio-v1",
        ),
        pytest.param(
            f"0::{SLICE}/crio-{CTR}.scope\n",
            KUBELET_MOUNTS + CRIO_SANDBOX,
            UID,
            CTR,
            id="crio-v2",
        ),
        pytest.param(
            "0::/\n",
            KUBELET_MOUNTS + CRIO_SANDBOX + CGROUP2_PRIVATE_NS,
            UID,
            None,
            id="crio-v2-private-cgroupns-never-the-sandbox",
        ),
        pytest.param(
            f"0::{SLICE}/crio-conmon-{CTR}.scope\n",
            KUBELET_MOUNTS,
            UID,
            None,
            id="crio-conmon-is-not-the-app",
        ),
        pytest.param(
            _v1(f"/kubepods/burstable/pod{UID}/{CTR}"),
            KUBELET_MOUNTS + DOCKER_SANDBOX,
            UID,
            CTR,
            id="docker-v1-cgroupfs",
        ),
        pytest.param(
            f"0::{SLICE}/docker-{CTR}.scope\n",
            KUBELET_MOUNTS + DOCKER_SANDBOX,
            UID,
            CTR,
            id="docker-v2-systemd",
        ),
        pytest.param(
            "0::/\n",
            KUBELET_MOUNTS + DOCKER_SANDBOX + CGROUP2_PRIVATE_NS,
            UID,
            None,
            id="docker-v2-private-cgroupns-never-the-sandbox",
        ),
        pytest.param(
            "0::/\n",
            _mount(f"/var/lib/docker/containers/{CTR}/hostname", "/etc/hostname"),
            None,
            CTR,
            id="plain-docker-outside-kubernetes",
        ),
        pytest.param(
            f"0::{SLICE}/cri-containerd-{SANDBOX}.scope\n",
            KUBELET_MOUNTS + CONTAINERD_SANDBOX,
            UID,
            None,
            id="an-id-seen-as-sandbox-is-dropped",
        ),
        pytest.param(
            "0::/user.slice/user-1000.slice/session-2.scope\n",
            _mount("/", "/", "ext4"),
            None,
            None,
            id="not-a-container",
        ),
        pytest.param("", "", None, None, id="empty-files"),
        pytest.param("garbage\n::\n", "short line\n", None, None, id="garbage"),
    ],
)
def test_proc_identity(
    tmp_path: Path, cgroup: str, mountinfo: str, uid: str | None, container_id: str | None
) -> None:
    """Pod uid and container id for each runtime and cgroup version, never the sandbox's id."""
    (tmp_path / "cgroup").write_text(cgroup)
    (tmp_path / "mountinfo").write_text(mountinfo)
    found = read_proc_identity(tmp_path / "cgroup", tmp_path / "mountinfo")
    assert (found.pod_uid, found.container_id) == (uid, container_id)


def test_container_name_from_termination_log_mount() -> None:
    """The kubelet's per-container directory names the container."""
    found = parse_mountinfo(KUBELET_MOUNTS, in_kubernetes=True)
    assert found.container_name == "app"
    assert found.pod_uid == UID


def test_cgroup_v2_root_in_mountinfo_gives_the_container() -> None:
    """With the host cgroup namespace, the cgroup2 mount root is the container's cgroup."""
    line = _mount(f"{SLICE}/cri-containerd-{CTR}.scope", "/sys/fs/cgroup", "cgroup2")
    found = parse_mountinfo(line, in_kubernetes=True)
    assert (found.pod_uid, found.container_id) == (UID, CTR)


def test_missing_files_are_empty(tmp_path: Path) -> None:
    """Unreadable files give no identity rather than an error."""
    found = read_proc_identity(tmp_path / "no-cgroup", tmp_path / "no-mountinfo")
    assert (found.pod_uid, found.container_id, found.container_name) == (None, None, None)


def test_parse_cgroup_systemd_uid_underscores() -> None:
    """The systemd driver's underscores become the uid's dashes."""
    assert parse_cgroup(f"0::{SLICE}/cri-containerd-{CTR}.scope").pod_uid == UID


@pytest.mark.parametrize(
    ("quoted", "plain"),
    [
        ("plain", "plain"),
        (r"say \"hi\"", 'say "hi"'),
        (r"back\\slash", "back\\slash"),
        (r"line\nbreak\ttab", "line\nbreak\ttab"),
        (r"caf\u00e9", "café"),
        ("café", "café"),
        (r"\x41\101", "AA"),
        (r"\U0001F600", "\U0001f600"),
    ],
)
def test_unquote_go(quoted: str, plain: str) -> None:
    """Go strconv.Quote escapes decode to the original text."""
    assert unquote_go(quoted) == plain


@pytest.mark.parametrize("bad", ["dangling\\", r"\q", r"\xZZ"])
def test_unquote_go_rejects_malformed(bad: str) -> None:
    """A malformed escape is a ValueError, not a wrong value."""
    with pytest.raises(ValueError):
        unquote_go(bad)


def test_parse_downward_map() -> None:
    """key="value" lines with escapes; malformed lines skipped."""
    text = (
        'app.kubernetes.io/name="cart"\n'
        'pod-template-hash="7d9f8c6b5"\n'
        'note="a \\"quoted\\" word\\nnext"\n'
        "no-quotes=cart\n"
        "\n"
        'bad="\\q"\n'
        'empty=""\n'
    )
    assert parse_downward_map(text) == {
        "app.kubernetes.io/name": "cart",
        "pod-template-hash": "7d9f8c6b5",
        "note": 'a "quoted" word\nnext',
        "empty": "",
    }
