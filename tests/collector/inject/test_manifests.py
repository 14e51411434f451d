"""Manifests as YAML: documents, key order, ``kind: List``, kinds and their pod templates."""

from __future__ import annotations

from typing import Any

import pytest
from podtrace_collector.inject import InjectOptions, ManifestError, inject_template
from podtrace_collector.inject.manifests import (
    TEMPLATE_PATHS,
    dump_documents,
    load_documents,
    transform,
)
from podtrace_collector.inject.mutate import Outcome


def _inject(template: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
    return inject_template(template, InjectOptions())


POD_SPEC = "spec: {containers: [{name: app, image: app:1}]}"


class TestYaml:
    """Reading and writing keeps what the manifest says."""

    def test_key_order_and_values_round_trip(self) -> None:
        """Keys come out in the order they went in (not sorted), values unchanged."""
        text = (
            "kind: Service\nmetadata: {name: b, annotations: {z: '1', a: 'yes'}}\napiVersion: v1\n"
        )
        (obj,) = load_documents(text, source="t")
        assert list(obj) == ["kind", "metadata", "apiVersion"]
        assert list(obj["metadata"]["annotations"]) == ["z", "a"]
        out = dump_documents([obj])
        assert out.index("kind") < out.index("metadata") < out.index("apiVersion")
        assert load_documents(out, source="out") == [obj]

    def test_strings_that_look_like_other_things_stay_strings(self) -> None:
        """Quoted numbers, yes/no, dates and '=' come back as the same strings."""
        text = "a: '1.10'\nb: 'yes'\nc: 2026-11-24\nd: '0777'\ne: =\nf: 'null'\n"
        text += "g: '2026-11-24T10:00:00Z'\n"
        (obj,) = load_documents(text, source="t")
        assert obj == {
            "a": "1.10",
            "b": "yes",
            "c": "2026-11-24",  # Kubernetes reads an unquoted date as a string: so do we
            "d": "0777",
            "e": "=",
            "f": "null",
            "g": "2026-11-24T10:00:00Z",
        }
        assert load_documents(dump_documents([obj]), source="out") == [obj]

    def test_multiline_strings_are_literal_blocks(self) -> None:
        """A script in a ConfigMap stays readable: a `|` block, not an escaped line."""
        obj = {"data": {"run.sh": "#!/bin/sh\nexec app\n"}}
        out = dump_documents([obj])
        assert "run.sh: |\n" in out
        assert load_documents(out, source="out") == [obj]

    def test_long_lines_are_not_folded(self) -> None:
        """A long command stays on one line."""
        command = "x" * 300
        assert f"- {command}\n" in dump_documents([{"command": [command]}])

    def test_documents_and_empty_documents(self) -> None:
        """`---` separates documents; empty ones (a trailing ---) are dropped."""
        text = "---\na: 1\n---\n---\nb: 2\n---\n"
        objects = load_documents(text, source="t")
        assert objects == [{"a": 1}, {"b": 2}]
        assert dump_documents(objects) == "a: 1\n---\nb: 2\n"
        assert dump_documents([]) == ""

    def test_json_is_yaml(self) -> None:
        """`kubectl get -o json` output is read too."""
        assert load_documents('{"kind": "Pod", "spec": {}}', source="t") == [
            {"kind": "Pod", "spec": {}}
        ]

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("a: [1, 2\n", "t: invalid YAML: "),
            ("a: 1\n b: 2\n", "(line 2, column 3)"),
            ("- just\n- a list\n", "t: document 1 is not a Kubernetes object"),
            ("a: 1\n---\nplain text\n", "t: document 2 is not a Kubernetes object"),
            ("a: !!python/object:os.system {}\n", "t: invalid YAML: "),
        ],
    )
    def test_bad_input_is_a_clear_error(self, text: str, message: str) -> None:
        """Invalid YAML names the source and the line; unsafe tags are refused, not run."""
        with pytest.raises(ManifestError) as caught:
            load_documents(text, source="t")
        assert message in str(caught.value)


class TestKinds:
    """Where each kind keeps its pod template, and what happens to the rest."""

    @pytest.mark.parametrize("kind", sorted(TEMPLATE_PATHS))
    def test_every_workload_kind_is_injected(self, kind: str) -> None:
        """Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Rollout, Pod, …"""
        path = TEMPLATE_PATHS[kind]
        template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}
        obj: dict[str, Any] = template if not path else {}
        node = obj
        for key in path[:-1]:
            node = node.setdefault(key, {})
        if path:
            node[path[-1]] = template
        obj = {"kind": kind, "metadata": {"name": "x"}, **obj} if path else {"kind": kind, **obj}
        (out,), report = transform([obj], _inject)
        node = out
        for key in path:
            node = node[key]
        assert node["spec"]["initContainers"][0]["name"] == "podtrace"
        assert report[0].endswith(": injected")

    def test_unknown_kinds_pass_through_with_a_note(self) -> None:
        """A ConfigMap, a custom resource, an object without kind: untouched, each reported."""
        objects = [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {}},
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
            {"metadata": {"name": "nokind"}},
        ]
        out, report = transform(objects, _inject)
        assert out == objects
        assert report == [
            "configmap/cfg: passed through unchanged (ConfigMap: no pod template)",
            "widget/w: passed through unchanged (Widget: no pod template)",
            "object/nokind: passed through unchanged (no kind: no pod template)",
        ]

    def test_list_items_are_transformed_in_place(self) -> None:
        """kind: List keeps its own keys and order; its workloads are injected."""
        (source,) = load_documents(
            "apiVersion: v1\nkind: List\nitems:\n"
            f"- {{kind: Pod, metadata: {{name: p, namespace: n}}, {POD_SPEC}}}\n"
            "- {kind: Service, metadata: {name: s}}\n"
            "metadata: {resourceVersion: ''}\n",
            source="t",
        )
        (out,), report = transform([source], _inject)
        assert list(out) == ["apiVersion", "kind", "items", "metadata"]
        assert out["items"][1] == source["items"][1]
        assert out["items"][0]["spec"]["initContainers"][0]["name"] == "podtrace"
        assert report == [
            "pod/p in n: injected",
            "service/s: passed through unchanged (Service: no pod template)",
        ]

    def test_a_workload_without_its_template(self) -> None:
        """A Deployment with no spec.template is passed through and reported."""
        (out,), report = transform([{"kind": "Deployment", "metadata": {"name": "d"}}], _inject)
        assert out == {"kind": "Deployment", "metadata": {"name": "d"}}
        assert report == ["deployment/d: passed through unchanged (no spec.template)"]

    def test_errors_name_the_object(self) -> None:
        """A refusal says which object of the stream it is about."""
        pod = {
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 4317}]}]},
        }
        with pytest.raises(
            Exception, match=r"^pod/p in n: container 'a' already listens on port 4317"
        ):
            transform([pod], _inject)

    def test_generate_name_and_nameless_objects_are_described(self) -> None:
        """Objects are named by name, generateName, or their place in the stream."""
        objects = [
            {
                "kind": "Pod",
                "metadata": {"generateName": "web-"},
                "spec": {"containers": [{"name": "a"}]},
            },
            {"kind": "Secret"},
        ]
        _, report = transform(objects, _inject)
        assert report == [
            "pod/web-: injected",
            "document 2 (secret): passed through unchanged (Secret: no pod template)",
        ]
