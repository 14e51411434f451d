"""Golden files: real-world manifests in, ``podtrace inject``'s output out, through the real CLI.

``PODTRACE_UPDATE_GOLDEN=1 pytest tests/collector/inject/test_golden.py`` rewrites the ``.out.yaml``
files after a deliberate change; review the diff before committing it.
"""

from __future__ import annotations

import os

import pytest
from podtrace_collector.inject.manifests import dump_documents, load_documents

from tests.collector.inject.helpers import (
    GOLDEN,
    by_name,
    env_of,
    load,
    objects_of,
    podtrace,
    template_of,
    validate_everything,
)

# case -> the flags it is injected with
CASES: dict[str, list[str]] = {
    "deployment": [],
    "statefulset": [
        "--sidecar=container",
        "--gateway=podtrace-gateway.observability:4317",
        "--forward-token-secret=podtrace/otlp-token",
    ],
    "cronjob": ["--python", "report"],
    "rollout": [],
    "list": [],
}


def _inject(case: str, *extra: str) -> str:
    result = podtrace("inject", "-f", str(GOLDEN / f"{case}.in.yaml"), *CASES[case], *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("case", CASES)
def test_output_is_the_golden_file(case: str) -> None:
    """`podtrace inject -f CASE.in.yaml` prints exactly CASE.out.yaml."""
    golden = GOLDEN / f"{case}.out.yaml"
    output = _inject(case)
    if os.environ.get("PODTRACE_UPDATE_GOLDEN"):
        golden.write_text(output)
    assert output == golden.read_text()


@pytest.mark.parametrize("case", CASES)
def test_input_and_output_are_valid_kubernetes(case: str) -> None:
    """Both sides validate against the Kubernetes OpenAPI schemas (strict: no unknown field)."""
    for name in (f"{case}.in.yaml", f"{case}.out.yaml"):
        assert validate_everything(load((GOLDEN / name).read_text())) >= 1, name


@pytest.mark.parametrize("case", CASES)
def test_injecting_the_output_again_changes_nothing(case: str) -> None:
    """Idempotent: the golden output injected again with the same flags is the same text."""
    golden = GOLDEN / f"{case}.out.yaml"
    result = podtrace("inject", "-f", str(golden), *CASES[case])
    assert result.returncode == 0, result.stderr
    assert result.stdout == golden.read_text()


@pytest.mark.parametrize("case", CASES)
def test_remove_gives_the_input_back_key_for_key(case: str) -> None:
    """`--remove` on the output is the input, keys in their original order (comments aside)."""
    result = podtrace("inject", "--remove", "-f", str(GOLDEN / f"{case}.out.yaml"))
    assert result.returncode == 0, result.stderr
    source = GOLDEN / f"{case}.in.yaml"
    assert result.stdout == dump_documents(load_documents(source.read_text(), source=case))
    assert load(result.stdout) == load(source.read_text())


def test_deployment_keeps_what_the_team_wrote() -> None:
    """The team's POD_NAME stays; the sidecar goes first and names the default container."""
    (deployment,) = load(_inject("deployment"))
    spec = deployment["spec"]["template"]["spec"]
    init = [c["name"] for c in spec["initContainers"]]
    assert init == ["podtrace", "db-proxy", "migrate"]  # before the init containers: they trace too
    sidecar = spec["initContainers"][0]
    assert env_of(sidecar)["CONTAINER_NAME"] == "api"  # kubectl.kubernetes.io/default-container
    api = by_name(spec["containers"])["api"]
    assert [e["name"] for e in api["env"]].count("POD_NAME") == 1
    assert api["command"][:4] == ["podtrace", "run", "--", "gunicorn"]
    assert api["args"] == ["--bind", "0.0.0.0:8080"]
    assert by_name(spec["containers"])["worker"]["args"][0] == "celery"  # no command: not wrapped
    assert "command" not in by_name(spec["containers"])["worker"]


def test_deployment_report_says_what_could_not_be_wrapped() -> None:
    """A Python container without a command is reported on stderr, not silently skipped."""
    result = podtrace("inject", "-f", str(GOLDEN / "deployment.in.yaml"))
    assert result.stderr.splitlines() == [
        "deployment/checkout in shop: injected",
        "deployment/checkout in shop: note: container 'worker': its command comes from the "
        "image, so it is not wrapped in `podtrace run`: give it a `command:`, or call "
        "podtrace.init() in the app",
    ]


def test_statefulset_container_mode_with_a_grpc_app_and_a_token() -> None:
    """A plain sidecar container, the gateway and token from flags, a gRPC app on port 4317."""
    service, statefulset = load(_inject("statefulset"))
    assert service == load((GOLDEN / "statefulset.in.yaml").read_text())[0]
    spec = statefulset["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    ledger, sidecar = spec["containers"]
    assert sidecar["name"] == "podtrace" and "restartPolicy" not in sidecar
    assert "--forward=podtrace-gateway.observability:4317" in sidecar["command"]
    token = {"secretKeyRef": {"name": "podtrace", "key": "otlp-token"}}
    assert env_of(sidecar)["PODTRACE_FORWARD_TOKEN"] == token
    assert env_of(ledger)["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"  # the team's, kept
    assert env_of(ledger)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4317"


def test_cronjob_gets_a_native_sidecar_and_the_python_wrapper() -> None:
    """A Job's pod can complete: its sidecar is native, and `podtrace run` wraps the report."""
    (cronjob,) = load(_inject("cronjob"))
    spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    assert spec["containers"][0]["command"][:5] == ["podtrace", "run", "--", "python", "-m"]


def test_list_injects_workloads_and_reports_the_rest() -> None:
    """In a List: the opted-out Deployment and the Service are untouched, each said on stderr."""
    result = podtrace("inject", "-f", str(GOLDEN / "list.in.yaml"))
    (source,) = load((GOLDEN / "list.in.yaml").read_text())
    (output,) = load(result.stdout)
    before, after = source["items"], output["items"]
    changed = [a["metadata"]["name"] for a, b in zip(after, before, strict=True) if a != b]
    assert changed == ["web", "log-shipper", "debug-shell"]
    assert result.stderr.splitlines() == [
        "deployment/web in web: injected",
        'deployment/legacy-batch in web: skipped: opted out (podtrace.io/inject: "false")',
        "daemonset/log-shipper in web: injected",
        "pod/debug-shell in web: injected",
        "service/web in web: passed through unchanged (Service: no pod template)",
    ]


def test_rollout_with_a_workload_ref_is_passed_through_with_a_pointer() -> None:
    """An Argo Rollout's own template is injected; one borrowing a Deployment's says so."""
    result = podtrace("inject", "-f", str(GOLDEN / "rollout.in.yaml"))
    frontend, payment = load(result.stdout)
    assert template_of(frontend)["spec"]["initContainers"][0]["name"] == "podtrace"  # type: ignore[index]
    assert payment == load((GOLDEN / "rollout.in.yaml").read_text())[1]
    assert (
        "rollout/payment in shop: passed through unchanged "
        "(its pods come from Deployment/payment: inject that one)"
    ) in result.stderr.splitlines()


def test_every_case_has_a_pod_template_in_it() -> None:
    """The golden inputs cover the kinds the issue lists."""
    kinds = {
        obj["kind"]
        for case in CASES
        for obj in objects_of(load((GOLDEN / f"{case}.in.yaml").read_text()))
        if template_of(obj) is not None
    }
    assert kinds >= {"Deployment", "StatefulSet", "DaemonSet", "CronJob", "Rollout", "Pod"}
