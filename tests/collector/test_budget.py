"""The shared memory budget: all-or-nothing reservations, retryable refusals."""

from __future__ import annotations

import threading

import pytest
from podtrace_collector.budget import MemoryBudget
from podtrace_collector.errors import Overloaded


def test_reserve_and_release() -> None:
    """Reservations add up and are given back."""
    budget = MemoryBudget(1000, 10)
    budget.reserve(600, 4)
    budget.reserve(400, 6)
    assert (budget.used_bytes, budget.used_spans) == (1000, 10)
    budget.release(1000, 10)
    assert (budget.used_bytes, budget.used_spans) == (0, 0)


@pytest.mark.parametrize(("n_bytes", "n_spans", "word"), [(501, 1, "memory"), (1, 6, "span")])
def test_over_a_limit_refuses_nothing_taken(n_bytes: int, n_spans: int, word: str) -> None:
    """Past either limit: Overloaded with a retry delay, and nothing was reserved."""
    budget = MemoryBudget(1000, 10, retry_after_s=2.0)
    budget.reserve(500, 5)
    with pytest.raises(Overloaded, match=word) as info:
        budget.reserve(n_bytes, n_spans)
    assert info.value.retry_after_s == 2.0
    assert (budget.used_bytes, budget.used_spans) == (500, 5)


def test_force_and_release_never_negative() -> None:
    """force() may exceed the limit; over-release clamps at zero."""
    budget = MemoryBudget(10, 1)
    budget.force(20, 2)
    assert budget.used_bytes == 20
    budget.release(100, 100)
    assert (budget.used_bytes, budget.used_spans) == (0, 0)


def test_thread_safe() -> None:
    """Concurrent reserve/release pairs leave the budget at zero."""
    budget = MemoryBudget(10**9, 10**9)

    def work() -> None:
        for _ in range(2000):
            budget.reserve(3, 1)
            budget.release(3, 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (budget.used_bytes, budget.used_spans) == (0, 0)
