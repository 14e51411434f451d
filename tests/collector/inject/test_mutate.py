"""The pod-template mutation: what is added, what is kept, what is refused, and its removal."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from podtrace_collector.config import CollectorConfig, load_config
from podtrace_collector.inject import InjectError, InjectOptions, inject_template, remove_template
from podtrace_collector.inject.options import STATUS

from podtrace import environment_variables as envvars
from tests import k8s_schema
from tests.collector.inject.helpers import by_name, env_of

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "k8s"


def _example(name: str) -> dict[str, Any]:
    """The pod template of the first Deployment of an example manifest."""
    docs = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


def _template(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "shop"}},
        "spec": {"containers": list(containers) or [{"name": "app", "image": "app:1"}], **spec},
    }


def _annotated(annotations: dict[str, Any]) -> dict[str, Any]:
    template = _template()
    template["metadata"]["annotations"] = annotations
    return template


def _inject(template: dict[str, Any], **options: Any) -> dict[str, Any]:
    injected, outcome = inject_template(template, InjectOptions(**options))
    assert outcome.changed, outcome.summary
    return injected


def _sidecar(template: dict[str, Any]) -> dict[str, Any]:
    spec = template["spec"]
    return next(
        c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == "podtrace"
    )


class TestWhatIsAdded:
    """The parts match the hand-written examples in examples/k8s/."""

    def test_sidecar_is_the_one_of_the_example(self) -> None:
        """From sidecar.yaml's app alone, injection rebuilds its sidecar and volume exactly."""
        example = _example("sidecar.yaml")
        bare = copy.deepcopy(example)
        del bare["spec"]["initContainers"], bare["spec"]["volumes"]
        injected = _inject(bare)
        assert injected["spec"]["initContainers"] == example["spec"]["initContainers"]
        assert injected["spec"]["volumes"] == example["spec"]["volumes"]

    def test_app_gets_the_environment_of_the_downward_api_example(self) -> None:
        """The app container gets downward-api.yaml's variables and mount, and the endpoint."""
        example = by_name(_example("downward-api.yaml")["spec"]["containers"])["app"]
        injected = _inject(_template({"name": "app", "image": "ghcr.io/shop/cart:1.4.0"}))
        (app,) = injected["spec"]["containers"]
        wanted = {k: v for k, v in env_of(example).items() if k != "PODTRACE_K8S_API"}
        assert wanted.items() <= env_of(app).items()
        assert env_of(app)["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        assert app["volumeMounts"] == example["volumeMounts"]

    def test_variables_are_those_the_detector_reads(self) -> None:
        """Each downward-API variable is one the detector reads, from the right field."""
        injected = _inject(_template())
        app, sidecar = injected["spec"]["containers"][0], _sidecar(injected)
        fields = {
            "metadata.name": envvars.POD_NAME_VARS,
            "metadata.namespace": envvars.NAMESPACE_VARS,
            "metadata.uid": envvars.POD_UID_VARS,
            "spec.nodeName": envvars.NODE_NAME_VARS,
        }
        for container in (app, sidecar):
            env = env_of(container)
            for path, names in fields.items():
                (name,) = [n for n in names if n in env]
                assert env[name] == {"fieldRef": {"fieldPath": path}}
            assert env["CONTAINER_NAME"] == "app"
            assert "CONTAINER_NAME" in envvars.CONTAINER_NAME_VARS

    def test_sidecar_command_parses_as_the_collector_would(self) -> None:
        """The sidecar's flags select sidecar mode on loopback, within its memory limit."""
        sidecar = _sidecar(_inject(_template(), gateway="gw.observability:4317"))
        assert sidecar["command"][:2] == ["podtrace", "collector"]
        config = load_config(sidecar["command"][2:], environ={})
        assert (config.mode, config.bind, config.forward) == (
            "sidecar",
            "127.0.0.1",
            ("gw.observability:4317",),
        )
        limit = re.fullmatch(r"(\d+)Mi", sidecar["resources"]["limits"]["memory"])
        assert limit is not None and config.memory_limit_bytes < int(limit.group(1)) * 2**20
        probe = " ".join(sidecar["startupProbe"]["exec"]["command"])
        assert f"http://127.0.0.1:{CollectorConfig().api_port}/readyz" in probe

    def test_native_or_plain_container(self) -> None:
        """native: first init container with restartPolicy Always; container: last container."""
        native = _inject(_template(), sidecar="native")
        assert native["spec"]["initContainers"][0]["restartPolicy"] == "Always"
        plain = _inject(_template(), sidecar="container")
        assert "initContainers" not in plain["spec"]
        assert plain["spec"]["containers"][-1]["name"] == "podtrace"
        assert "restartPolicy" not in plain["spec"]["containers"][-1]
        for template in (native, plain):
            k8s_schema.validate_pod_template(template)

    def test_grpc_app_is_pointed_at_the_grpc_port(self) -> None:
        """An app that sets OTEL_EXPORTER_OTLP_PROTOCOL=grpc gets http://localhost:4317."""
        app = {
            "name": "app",
            "image": "a",
            "env": [{"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "grpc"}],
        }
        (injected,) = _inject(_template(app))["spec"]["containers"][:1]
        assert env_of(injected)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4317"

    def test_status_records_only_what_was_added(self) -> None:
        """The podtrace.io/status annotation lists the variables podtrace added, not the app's."""
        app = {"name": "app", "image": "a", "env": [{"name": "POD_NAME", "value": "x"}]}
        injected = _inject(_template(app))
        status = json.loads(injected["metadata"]["annotations"][STATUS])
        assert "POD_NAME" not in status["containers"]["app"]["env"]
        assert status["sidecar"] == "initContainers" and status["volume"] is True


class TestWhatIsKept:
    """The pod's own settings win over podtrace's."""

    def test_own_variables_and_endpoint_are_kept_with_a_note(self) -> None:
        """A node agent endpoint stays, and the report says the spans bypass the sidecar."""
        env = [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://$(HOST_IP):4318"},
        ]
        template = _template({"name": "app", "image": "a", "env": env})
        injected, outcome = inject_template(template, InjectOptions())
        (app,) = injected["spec"]["containers"]
        assert app["env"][:2] == env
        assert [e["name"] for e in app["env"]].count("OTEL_EXPORTER_OTLP_ENDPOINT") == 1
        assert outcome.notes == (
            "container 'app' keeps its own OTEL_EXPORTER_OTLP_ENDPOINT (http://$(HOST_IP):4318), "
            "not the sidecar",
        )

    def test_the_input_is_never_modified(self) -> None:
        """inject_template and remove_template return new templates."""
        template = _template()
        snapshot = copy.deepcopy(template)
        injected = _inject(template)
        assert template == snapshot
        remove_template(injected)
        assert injected == _inject(snapshot)

    def test_existing_downward_api_volume_is_reused(self) -> None:
        """downward-api.yaml already has the podinfo volume and mount: they are not doubled."""
        example = _example("downward-api.yaml")
        injected = _inject(example)
        assert injected["spec"]["volumes"] == example["spec"]["volumes"]
        (app,) = injected["spec"]["containers"]
        assert [m["name"] for m in app["volumeMounts"]] == ["podinfo"]
        assert app["command"] == example["spec"]["containers"][0]["command"]
        assert remove_template(injected)[0] == example

    def test_annotations_override_the_flags(self) -> None:
        """podtrace.io/gateway, image, sidecar and python annotations win over the options."""
        template = _template({"name": "app", "image": "a", "command": ["python", "app.py"]})
        template["metadata"]["annotations"] = {
            "podtrace.io/gateway": "gw.team-a:4317",
            "podtrace.io/image": "registry.example.com/podtrace/collector:0.1.0",
            "podtrace.io/sidecar": "container",
            "podtrace.io/python": "true",
        }
        injected = _inject(template, gateway="ignored:4317")
        app, sidecar = injected["spec"]["containers"]
        assert "--forward=gw.team-a:4317" in sidecar["command"]
        assert sidecar["image"] == "registry.example.com/podtrace/collector:0.1.0"
        assert app["command"] == ["podtrace", "run", "--", "python", "app.py"]

    def test_reinjecting_with_new_options_replaces_the_old_parts(self) -> None:
        """A second injection with another gateway updates it; removal still gives the original."""
        template = _template()
        first = _inject(template, gateway="old:4317")
        second = _inject(first, gateway="new:4317")
        assert "--forward=new:4317" in _sidecar(second)["command"]
        assert second == _inject(template, gateway="new:4317")
        assert remove_template(second)[0] == template


class TestSkipped:
    """Templates left alone, with the reason in the report."""

    def test_opt_out(self) -> None:
        """podtrace.io/inject: "false" (or a YAML false) leaves the template as it is."""
        for value in ("false", "False", False):
            template = _template()
            template["metadata"]["annotations"] = {"podtrace.io/inject": value}
            injected, outcome = inject_template(template, InjectOptions())
            assert injected is template and not outcome.changed
            assert outcome.summary == 'skipped: opted out (podtrace.io/inject: "false")'

    def test_hand_written_sidecar(self) -> None:
        """sidecar.yaml already runs podtrace's sidecar: nothing is added twice."""
        example = _example("sidecar.yaml")
        injected, outcome = inject_template(example, InjectOptions())
        assert injected == example and not outcome.changed
        assert (
            outcome.summary == "skipped: it already runs a podtrace sidecar (container 'podtrace')"
        )

    def test_host_network(self) -> None:
        """A hostNetwork pod would put the sidecar's ports on the node: skipped."""
        template = _template(hostNetwork=True)
        injected, outcome = inject_template(template, InjectOptions())
        assert injected is template
        assert not outcome.changed and "hostNetwork" in outcome.summary

    def test_remove_without_injection(self) -> None:
        """--remove on a template podtrace never touched changes nothing."""
        template = _template()
        removed, outcome = remove_template(template)
        assert removed is template and outcome.summary == "unchanged: not injected by podtrace"


def _with_port(port: int, *, init: bool = False) -> dict[str, Any]:
    agent = {"name": "otel-agent", "image": "example/agent:1", "ports": [{"containerPort": port}]}
    if init:
        return _template(initContainers=[{**agent, "restartPolicy": "Always"}])
    return _template({"name": "app", "image": "a"}, agent)


CONFLICTS = {
    "an agent on 4317": (_with_port(4317), "container 'otel-agent' already listens on port 4317"),
    "a native agent on 4318": (
        _with_port(4318, init=True),
        "container 'otel-agent' already listens on port 4318",
    ),
    "the API port": (_with_port(4320), "container 'otel-agent' uses port 4320"),
    "an OpenTelemetry Collector image": (
        _template(
            {"name": "a", "image": "a"},
            {"name": "c", "image": "otel/opentelemetry-collector:0.115.0"},
        ),
        "container 'c' runs an OpenTelemetry Collector",
    ),
    "the Operator's sidecar annotation": (
        _annotated({"sidecar.opentelemetry.io/inject": "true"}),
        "the OpenTelemetry Operator injects its own collector",
    ),
    "a podinfo volume of another kind": (
        _template(volumes=[{"name": "podinfo", "configMap": {"name": "podinfo"}}]),
        "a volume named 'podinfo' that is not a downward-API volume",
    ),
    "python names a missing container": (
        _annotated({"podtrace.io/python": "api,nope"}),
        "--python/podtrace.io/python names no container of this pod: api, nope",
    ),
    "a bad inject value": (
        _annotated({"podtrace.io/inject": "maybe"}),
        'podtrace.io/inject must be "true" or "false", not \'maybe\'',
    ),
    "a bad sidecar value": (
        _annotated({"podtrace.io/sidecar": "sideways"}),
        "the sidecar must be 'native' or 'container', not 'sideways' (from the podtrace.io/",
    ),
    "no containers": ({"spec": {"containers": []}}, "the pod template has no spec.containers list"),
    "a nameless container": (
        _template({"image": "a"}),
        "every container of the pod template needs a name",
    ),
}


@pytest.mark.parametrize(("template", "message"), CONFLICTS.values(), ids=CONFLICTS.keys())
def test_refused_with_a_clear_reason(template: dict[str, Any], message: str) -> None:
    """Templates podtrace cannot join raise InjectError saying why (and what to do)."""
    with pytest.raises(InjectError) as caught:
        inject_template(template, InjectOptions())
    assert message in str(caught.value)


@pytest.mark.parametrize("policy", ["OnFailure", "Never"])
def test_plain_sidecar_refused_for_pods_that_complete(policy: str) -> None:
    """A Job's pod with a plain sidecar container would never complete."""
    with pytest.raises(InjectError, match="needs the native sidecar"):
        inject_template(_template(restartPolicy=policy), InjectOptions(sidecar="container"))
    injected, _ = inject_template(_template(restartPolicy=policy), InjectOptions())
    assert injected["spec"]["initContainers"][0]["restartPolicy"] == "Always"


def test_python_container_without_a_command_is_noted() -> None:
    """Wrapping needs the command: without one the template is injected and a note says so."""
    template = _template({"name": "app", "image": "a", "args": ["serve"]})
    injected, outcome = inject_template(template, InjectOptions(python=frozenset({"app"})))
    assert injected["spec"]["containers"][0]["args"] == ["serve"]
    assert "command" not in injected["spec"]["containers"][0]
    (note,) = outcome.notes
    assert note.startswith("container 'app': its command comes from the image")


@pytest.mark.parametrize(
    "status",
    ["not json", json.dumps({"sidecar": "elsewhere"}), json.dumps({"containers": []})],
)
def test_a_foreign_status_annotation_is_an_error(status: str) -> None:
    """A podtrace.io/status podtrace did not write is not guessed at."""
    template = _template()
    template["metadata"]["annotations"] = {STATUS: status}
    with pytest.raises(InjectError, match=r"podtrace\.io/status"):
        remove_template(template)
