"""JSON Patch generation, checked against an independent RFC 6902 implementation (jsonpatch)."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.inject.patch import make_patch, pointer

KEYS = st.sampled_from(["a", "b", "c/d", "e~f", "g", ""])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


def _apply(old: Any, new: Any) -> Any:
    return jsonpatch.apply_patch({"root": old}, make_patch({"root": old}, {"root": new}))["root"]


@settings(max_examples=300, deadline=None)
@given(JSON, JSON)
def test_any_two_documents(old: Any, new: Any) -> None:
    """Applying make_patch(old, new) to old gives new (JSON types: true is not 1).

    Key order is not part of JSON's data model, so a reordering is not patched; the templates'
    own key order is checked in test_properties (podtrace only appends keys)."""
    assert json.dumps(_apply(old, new), sort_keys=True) == json.dumps(new, sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(JSON, max_size=6), st.data())
def test_insertions_and_deletions_in_lists(items: list[Any], data: st.DataObject) -> None:
    """Lists that only grew (or only shrank) are patched element by element, and correctly."""
    extra = data.draw(st.lists(st.tuples(st.integers(0, len(items)), JSON), max_size=4))
    grown = list(items)
    for index, value in sorted(extra, key=lambda pair: pair[0], reverse=True):
        grown.insert(index, value)
    for old, new in ((items, grown), (grown, items)):
        ops = make_patch(old, new)
        patched = jsonpatch.apply_patch(old, ops)
        assert json.dumps(patched, sort_keys=True) == json.dumps(new, sort_keys=True)
        assert all(op["op"] != "replace" or op["path"] != "" for op in ops)


def test_equal_documents_need_no_patch() -> None:
    """Nothing changed: an empty patch (the webhook then sends none)."""
    document = {"spec": {"containers": [{"name": "a", "env": []}]}}
    assert make_patch(document, json.loads(json.dumps(document))) == []


def test_nested_booleans_are_not_numbers_in_lists() -> None:
    """A list element [False] is not [0]: growing a list keeps the JSON types apart."""
    old: list[Any] = [[0]]
    new: list[Any] = [[False], [0]]
    patched = jsonpatch.apply_patch(old, make_patch(old, new))
    assert json.dumps(patched) == json.dumps(new)


def test_booleans_are_not_numbers() -> None:
    """true and 1 are equal in Python but not in JSON: the change is patched."""
    assert make_patch({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]


def test_pointer_escapes_slash_and_tilde() -> None:
    """RFC 6901: "~" is "~0" and "/" is "~1", as in podtrace.io/status."""
    assert pointer("metadata", "annotations", "podtrace.io/status") == (
        "/metadata/annotations/podtrace.io~1status"
    )
    assert pointer("a~b", 0) == "/a~0b/0"


def test_appended_entries_are_adds_at_their_index() -> None:
    """Two variables after the app's own one: two adds at indices 1 and 2."""
    old = {"env": [{"name": "A"}]}
    new = {"env": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}
    assert make_patch(old, new) == [
        {"op": "add", "path": "/env/1", "value": {"name": "B"}},
        {"op": "add", "path": "/env/2", "value": {"name": "C"}},
    ]
