"""RFC 6902 JSON Patch between two JSON documents, as an admission webhook answers with it.

Lists that only gained (or only lost) elements get one ``add`` (``remove``) per element, so the
patch reads as what podtrace added; any other list change replaces the list.
"""

from __future__ import annotations

import json
from typing import Any

Operation = dict[str, Any]


def make_patch(old: Any, new: Any) -> list[Operation]:
    """Operations that turn ``old`` into ``new`` when applied in order."""
    operations: list[Operation] = []
    _diff(old, new, "", operations)
    return operations


def pointer(*keys: str | int) -> str:
    """A JSON Pointer (RFC 6901) to ``keys``."""
    return "".join("/" + str(key).replace("~", "~0").replace("/", "~1") for key in keys)


def _diff(old: Any, new: Any, path: str, operations: list[Operation]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        _diff_object(old, new, path, operations)
    elif isinstance(old, list) and isinstance(new, list):
        _diff_list(old, new, path, operations)
    elif type(old) is not type(new) or old != new:  # True == 1 in Python, not in JSON
        operations.append({"op": "replace", "path": path, "value": new})


def _diff_object(old: dict[str, Any], new: dict[str, Any], path: str, ops: list[Operation]) -> None:
    for key in old:
        if key not in new:
            ops.append({"op": "remove", "path": path + pointer(key)})
    for key, value in new.items():
        if key in old:
            _diff(old[key], value, path + pointer(key), ops)
        else:
            ops.append({"op": "add", "path": path + pointer(key), "value": value})


def _diff_list(old: list[Any], new: list[Any], path: str, ops: list[Operation]) -> None:
    if len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            _diff(before, after, path + pointer(index), ops)
    elif len(old) < len(new) and _is_subsequence(old, new):
        kept = 0
        for index, item in enumerate(new):  # indices of `new` are valid as the list grows
            if kept < len(old) and _same(old[kept], item):
                kept += 1
            else:
                ops.append({"op": "add", "path": path + pointer(index), "value": item})
    elif len(new) < len(old) and _is_subsequence(new, old):
        kept = 0
        for item in old:
            if kept < len(new) and _same(new[kept], item):
                kept += 1
            else:  # the next element to keep has moved into this place
                ops.append({"op": "remove", "path": path + pointer(kept)})
    else:
        ops.append({"op": "replace", "path": path, "value": new})


def _is_subsequence(short: list[Any], long: list[Any]) -> bool:
    """Whether ``long`` is ``short`` with elements inserted (greedy matching finds it if so)."""
    kept = 0
    for item in long:
        if kept < len(short) and _same(short[kept], item):
            kept += 1
    return kept == len(short)


def _same(a: Any, b: Any) -> bool:
    # As JSON, not as Python: [False] == [0] and {"a": True} == {"a": 1} in Python.
    if type(a) is not type(b):
        return False
    if isinstance(a, dict | list):
        return _canonical(a) == _canonical(b)
    return bool(a == b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
