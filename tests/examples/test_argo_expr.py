"""The expr subset of ``tests/examples/argo.py`` against the semantics Argo and expr document.

Cases follow Argo Rollouts' ``utils/evaluate`` and ``metricproviders/webmetric`` tests (the
conditions and results they show) and expr's language definition and run-time rules; each says
which rule it checks.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.examples.argo import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    ExprError,
    evaluate,
    evaluate_result,
)

REPORT = {"a": 1.0, "b": True, "c": [1.0, 2.0, 3.0, 4.0], "d": None, "state": "healthy"}


@pytest.mark.parametrize(
    ("condition", "result", "expected"),
    [
        ("result == true", True, True),  # Argo: a bool result
        ("result == false", True, False),
        ("result > 1", 5.0, True),  # JSON numbers are float64, compared with an int literal
        ("2 in result", [1.0, 2.0, 3.0], True),  # `in` an array compares by ==
        ("result.a > 0 && result.b && result.d == nil", REPORT, True),  # Argo's web metric test
        ("result.a >= 2 && result.b", REPORT, False),
        ("asInt(result) > 0", "1", True),  # Argo's helpers on a string result
        ("asFloat(result) > 1.1", "1.2", True),
        ("result.missing == nil", REPORT, True),  # a missing map key is nil, not an error
        ("result.missing?.deeper == nil", REPORT, True),  # ?. stops at nil
        ('result["state"] == "healthy"', REPORT, True),  # [] is the same fetch as .
        ('result.state == "healthy"', REPORT, True),
        ("result.state == 'healthy'", REPORT, True),  # single-quoted strings
        ('result.state != "regressed"', REPORT, True),
        ('result.a == "1"', REPORT, False),  # different types are unequal, not an error
        ("result.a == 1", REPORT, True),  # float64 1 equals int 1
        ("result.b == 1", REPORT, False),  # a bool is not a number
        ('result.state in ["healthy", "insufficient_data"]', REPORT, True),
        ('result.state not in ["regressed"]', REPORT, True),
        ('"state" in result', REPORT, True),  # `in` a map: among its keys
        ("result.nothing in result.missing", REPORT, False),  # x in nil is false
        ("true || false && false", None, True),  # && binds tighter than ||
        ("false && true || true", None, True),
        ("not result.b == false", REPORT, True),  # `not` binds tighter than ==: (not b) == false
        ('result.state == "healthy" and not (result.a > 2)', REPORT, True),
        ("false && result.missing.deeper", REPORT, False),  # short-circuit: no fetch from nil
        ("len(result.c) == 4", REPORT, True),
    ],
)
def test_conditions(condition: str, result: Any, expected: bool) -> None:
    """The condition evaluates to the value expr gives."""
    assert evaluate(condition, result) is expected


@pytest.mark.parametrize(
    ("condition", "result", "says"),
    [
        ("1", True, "expected bool, but got int"),  # Argo: a condition must be a bool
        ("invalidVariable", True, "unknown name"),  # Argo: a compile error
        ("result.missing.deeper == nil", REPORT, "cannot fetch deeper from <nil>"),
        ('result.state == "healthy"', "not json", "cannot fetch state from string"),
        ("result.state == 'x'", None, "cannot fetch state from <nil>"),
        ('not result.state == "healthy"', REPORT, "invalid operation: ! on string"),
        ("result.state && true", REPORT, "invalid operation: && on string"),
        ('result.a < "b"', REPORT, "invalid operation: float64 < string"),
        ("result.c[9] == 1", REPORT, "index out of range"),
        ("result.state ==", REPORT, "unexpected"),
        ("asInt(result) == 1", "1.1", "asInt() not supported"),
    ],
)
def test_errors(condition: str, result: Any, says: str) -> None:
    """Compile and run-time errors are errors (Argo then records a measurement in Error)."""
    with pytest.raises(ExprError, match=says.replace("(", r"\(").replace(")", r"\)")):
        evaluate(condition, result)


@pytest.mark.parametrize(
    ("success", "failure", "phase"),
    [
        ("true", "false", SUCCESSFUL),
        ("true", "true", FAILED),  # the failure condition wins
        ("false", "false", INCONCLUSIVE),  # neither: inconclusive
        ("", "false", SUCCESSFUL),  # only a failure condition: success is its negation
        ("false", "", FAILED),  # only a success condition: failure is its negation
        ("", "", SUCCESSFUL),
        ("invalidVariable", "true", ERROR),  # a condition that cannot be evaluated
        ("true", "invalidVariable == true", ERROR),
    ],
)
def test_evaluate_result(success: str, failure: str, phase: str) -> None:
    """A measurement's phase from the two conditions, as Argo's EvaluateResult decides it."""
    metric = {"successCondition": success, "failureCondition": failure}
    assert evaluate_result(True, {k: v for k, v in metric.items() if v}) == phase


def test_inconclusive_between_the_two_conditions() -> None:
    """Argo's web metric example: a value between success and failure is Inconclusive."""
    metric = {
        "successCondition": "result.a >= 2 && result.b && result.d == nil",
        "failureCondition": "result.a <= 0 && result.b && result.d == nil",
    }
    assert evaluate_result(REPORT, metric) == INCONCLUSIVE
