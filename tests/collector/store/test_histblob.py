"""Tests for store._histblob: histograms as count lanes in one blob, added as integers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from podtrace_collector.store import _histblob

bins = st.integers(min_value=-300, max_value=1_000)
histograms = st.dictionaries(bins, st.integers(min_value=0, max_value=2**40), max_size=40)


def _added(*hs: dict[int, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in hs:
        for b, c in h.items():
            out[b] = out.get(b, 0) + c
    return {b: c for b, c in out.items() if c}


@given(histograms)
def test_a_blob_reads_back_its_counts(h: dict[int, int]) -> None:
    """Every non-empty bin comes back with its count; empty bins are not kept."""
    assert _histblob.counts(_histblob.encode(h)) == {b: c for b, c in h.items() if c}


@given(st.lists(histograms, max_size=6))
def test_a_merge_adds_bin_by_bin(hs: list[dict[int, int]]) -> None:
    """Merged blobs hold the sums of every bin, whatever the bins' ranges and lane widths."""
    merged = _histblob.merge(_histblob.encode(h) for h in hs)
    assert _histblob.counts(merged) == _added(*hs)


def test_lanes_widen_when_a_sum_would_overflow_them() -> None:
    """Lanes hold the histogram's total; a sum past it gets wider lanes, no carry between."""
    a = _histblob.encode({5: 100, 6: 155})
    assert len(a) == 5 + 2  # a total of 255: one byte per count
    merged = _histblob.merge([a, a])
    assert _histblob.counts(merged) == {5: 200, 6: 310}
    assert len(merged) == 5 + 2 * 2
    big = _histblob.merge([_histblob.encode({0: 2**63}), _histblob.encode({0: 2**63 - 1})])
    assert _histblob.counts(big) == {0: 2**64 - 1}


def test_json_text_from_before_blobs_reads_and_merges() -> None:
    """A row written as JSON text, and the column default '{}', read and merge like blobs."""
    legacy = json.dumps({"-176": 2, "40": 7})
    assert _histblob.counts(legacy) == {-176: 2, 40: 7}
    assert _histblob.counts("{}") == {} and _histblob.counts(b"") == {}
    merged = _histblob.merge(["{}", legacy, _histblob.encode({40: 1, 41: 3})])
    assert _histblob.counts(merged) == {-176: 2, 40: 8, 41: 3}
    assert _histblob.merge(["{}", b""]) == b""


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({1: -1}, "negative"),
        ({2**31: 1}, "int32"),
        ({0: 2**63, 1: 2**63}, "64 bits"),
    ],
)
def test_values_a_blob_cannot_hold_are_errors(counts: dict[int, int], message: str) -> None:
    """Counts no lane can hold are a ValueError (the store reports the data as the cause)."""
    with pytest.raises(ValueError, match=message):
        _histblob.encode(counts)
