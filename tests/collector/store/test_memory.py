"""Tests for store.memory: the in-memory store keeps its own copies.

The behaviour shared with the other stores is tested against all of them in test_contract.py.
"""

from __future__ import annotations

from podtrace_collector.store.memory import MemoryStore

from tests.collector.store.samples import T0, registry, sample, window


def test_written_aggregates_are_copied() -> None:
    """Mutating an Aggregates after writing it does not change the store."""
    st = MemoryStore()
    a = sample()
    st.write({T0: a})
    a.revisions[("shop/cart", "abc12")].requests = 0
    a.revisions[("shop/cart", "abc12")].latency.add(1.0)
    a.origins[("shop/cart", "abc12")].exemplars.append("x")
    assert window(st) == sample()


def test_reads_are_copies() -> None:
    """Mutating what a read returned does not change the store."""
    st = MemoryStore()
    st.write({T0: sample()})
    window(st).revisions[("shop/cart", "abc12")].pods.add("intruder")
    registry(st)[("shop/cart", "abc12")].pods.add("intruder")
    assert window(st) == sample()
    assert "intruder" not in registry(st)[("shop/cart", "abc12")].pods
