"""``podtrace inject`` as a process: files and stdin, pipes, exit codes, and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.collector.inject.helpers import GOLDEN, load, podtrace

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers:
        - {name: cart, image: ghcr.io/example/cart:1.4.0, command: [python, -m, cart]}
"""


def test_stdin_in_stdout_out_report_on_stderr() -> None:
    """`kubectl get … -o yaml | podtrace inject -f - | kubectl apply -f -`: YAML only on stdout."""
    result = podtrace("inject", "-f", "-", "--python", "cart", stdin=APP)
    assert result.returncode == 0
    (deployment,) = load(result.stdout)
    spec = deployment["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["name"] == "podtrace"
    assert spec["containers"][0]["command"] == ["podtrace", "run", "--", "python", "-m", "cart"]
    assert result.stderr == "deployment/cart in shop: injected\n"


def test_a_pipe_of_inject_and_remove_gives_the_manifest_back() -> None:
    """inject | inject | inject --remove is the original, as YAML."""
    once = podtrace("inject", "-f", "-", stdin=APP).stdout
    twice = podtrace("inject", "-f", "-", stdin=once).stdout
    assert twice == once
    removed = podtrace("inject", "--remove", "-f", "-", stdin=twice)
    assert removed.returncode == 0 and load(removed.stdout) == load(APP)
    assert removed.stderr == "deployment/cart in shop: removed\n"


def test_several_files_and_json(tmp_path: Path) -> None:
    """-f may be repeated; JSON (kubectl get -o json) is read as well; output is one stream."""
    pod = tmp_path / "pod.json"
    pod.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a", "image": "a"}]},
            }
        )
    )
    result = podtrace("inject", "-f", str(pod), "-f", str(GOLDEN / "rollout.in.yaml"))
    assert result.returncode == 0, result.stderr
    assert [d["kind"] for d in load(result.stdout)] == ["Pod", "Rollout", "Rollout"]
    assert result.stdout.count("\n---\n") == 2


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["-f", "-"], "kind: [unclosed\n", 1, "podtrace inject: -: invalid YAML: "),
        (
            ["-f", "/nonexistent/app.yaml"],
            None,
            1,
            "podtrace inject: /nonexistent/app.yaml: No such",
        ),
        (["-f", "-"], "- a\n- b\n", 1, "-: document 1 is not a Kubernetes object"),
        (
            ["-f", "-"],
            APP.replace("command: [python, -m, cart]", "ports: [{containerPort: 4318}]"),
            1,
            "podtrace inject: deployment/cart in shop: container 'cart' already listens on port "
            "4318: a different OTLP sidecar or agent runs in this pod",
        ),
        (
            ["-f", "-", "--sidecar", "container"],
            APP.replace("containers:", "restartPolicy: Never\n      containers:"),
            1,
            "needs the native sidecar",
        ),
        ([], None, 2, "the following arguments are required: -f/--filename"),
        (["-f", "-", "--sidecar", "sideways"], APP, 2, "invalid choice: 'sideways'"),
        (["-f", "-", "--forward-token-secret", "no-key"], APP, 2, "invalid forward token secret"),
        (["-f", "-", "--gateway", ""], APP, 2, "invalid gateway address"),
    ],
)
def test_errors_exit_non_zero_with_one_clear_line(
    args: list[str], stdin: str | None, code: int, message: str
) -> None:
    """Bad input exits 1, bad flags 2; stdout stays empty so nothing half-done gets applied."""
    result = podtrace("inject", *args, stdin=stdin)
    assert result.returncode == code
    assert message in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_not_utf8(tmp_path: Path) -> None:
    """A binary file is refused, not crashed on."""
    binary = tmp_path / "app.yaml"
    binary.write_bytes(b"\xff\xfe\x00kind")
    result = podtrace("inject", "-f", str(binary))
    assert result.returncode == 1 and "not UTF-8 text" in result.stderr


def test_help_lists_the_flags() -> None:
    """`podtrace inject --help` explains the flags and exits 0; `podtrace --help` lists both."""
    result = podtrace("inject", "--help")
    assert result.returncode == 0
    for flag in (
        "--remove",
        "--sidecar",
        "--gateway",
        "--image",
        "--python",
        "--forward-token-secret",
    ):
        assert flag in result.stdout
    commands = podtrace("--help").stdout
    assert "inject" in commands and "webhook" in commands
