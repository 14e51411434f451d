"""Argo Rollouts' analysis, as far as a web metric goes, to test an AnalysisTemplate without Argo.

Argo evaluates ``successCondition``/``failureCondition`` with the expr language
(github.com/expr-lang/expr, compiled with ``result`` and a few helpers in its environment), and
no Python package evaluates expr faithfully (the PyPI name ``expr-lang`` is an empty placeholder;
a binding of the Go engine found there ships one CPython version's binary only and
type-checks its variables against a declared schema, unlike Argo's untyped ``result``).  So
``evaluate`` below is a small interpreter of the part of expr a template's conditions use,
following expr's grammar (operator precedence as in its ``parser/operator``) and its run-time rules
(``vm/runtime``), checked against the semantics in ``test_argo_expr.py``:

- ``result.field`` / ``result["field"]`` / ``?.``: a missing map key is ``nil``; fetching a field
  of ``nil`` or of a non-map is an error (``cannot fetch ... from <nil>``);
- ``==``/``!=``: numbers compare by value (JSON numbers are float64), strings and bools by value,
  ``nil == nil``; values of different types are unequal (never an error);
- ``<``/``>``/``<=``/``>=``: numbers or strings, an error on anything else;
- ``in``/``not in``: membership in an array (by ``==``) or among a map's keys; ``x in nil`` is
  false;
- ``and``/``&&``, ``or``/``||`` short-circuit; ``not``/``!`` bind tighter than comparisons (as in
  expr: ``not a == b`` is ``(not a) == b``); a non-bool operand is an error;
- the condition must yield a bool (``expected bool, but got ...``); an unknown name is a
  compile error.  Not covered: arithmetic, ranges, pipes, closures, ternaries, ``??``, and
  expr's compile-time type errors between two literals.

Around it, the parts of Argo's analysis controller a template's behaviour depends on
(``metricproviders/webmetric``, ``utils/evaluate``, ``analysis/analysis.go`` and
``rollout/analysis.go``): one measurement, the metric's counters and its assessment, and what
the Rollout does with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR, RUNNING = (
    "Successful",
    "Failed",
    "Inconclusive",
    "Error",
    "Running",
)
ERROR_RETRY_INTERVAL_S = 10.0  # analysis.DefaultErrorRetryInterval: an Error is retried this soon
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4


class ExprError(Exception):
    """A condition that does not compile or fails at run time (Argo: measurement phase Error)."""


# --- the expr subset ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>\d+\.\d*|\.\d+|\d+)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>\?\.|==|!=|<=|>=|&&|\|\||[<>!.\[\](),])
      | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"and": "&&", "or": "||", "not": "!"}
_PRECEDENCE = {"||": 10, "&&": 15, "==": 20, "!=": 20, "<": 20, ">": 20, "<=": 20, ">=": 20}
_PRECEDENCE |= {"in": 20, "not in": 20}
_UNARY_PRECEDENCE = 50
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}
_NIL = object()  # a parsed ``nil`` literal, distinct from "no value"


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprError(f"unexpected token at {text[pos:]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "name" and value in _WORD_OPS:
            kind, value = "op", _WORD_OPS[value]
        out.append((kind, value))
        pos = m.end()
    return [*out, ("end", "")]


class _Parser:
    """Pratt parser to a tuple tree, evaluated by ``_Eval``."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise ExprError(f"expected {value!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        tree = self.expression(0)
        if self.peek()[0] != "end":
            raise ExprError(f"unexpected {self.peek()[1]!r}")
        return tree

    def expression(self, min_prec: int) -> Any:
        """Precedence climbing; every binary operator of the subset is left-associative."""
        left = self.unary()
        while (op := self._binary_op()) is not None and _PRECEDENCE[op] >= min_prec:
            self.take()
            if op == "not in":
                self.take()
            left = ("bin", op, left, self.expression(_PRECEDENCE[op] + 1))
        return left

    def _binary_op(self) -> str | None:
        kind, value = self.peek()
        if value == "!" and self.toks[self.i + 1][1] == "in":
            return "not in"
        if (kind == "op" and value in _PRECEDENCE) or (kind == "name" and value == "in"):
            return value
        return None

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return ("not", self.expression(_UNARY_PRECEDENCE))
        return self.postfix(self.primary())

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "num":
            return ("lit", float(value) if "." in value else int(value))
        if kind == "str":
            return ("lit", re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), value[1:-1]))
        if kind == "name":
            literals = {"true": True, "false": False, "nil": _NIL}
            if value in literals:
                return ("lit", literals[value])
            if self.peek()[1] == "(":
                return ("call", value, self.arguments())
            return ("name", value)
        if value == "(":
            inner = self.expression(0)
            self.take(")")
            return inner
        if value == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.expression(0))
                if self.peek()[1] != "]":
                    self.take(",")
            self.take("]")
            return ("array", items)
        raise ExprError(f"unexpected {value!r}")

    def arguments(self) -> list[Any]:
        self.take("(")
        args = []
        while self.peek()[1] != ")":
            args.append(self.expression(0))
            if self.peek()[1] != ")":
                self.take(",")
        self.take(")")
        return args

    def postfix(self, node: Any) -> Any:
        while True:
            value = self.peek()[1]
            if value in (".", "?."):
                self.take()
                kind, name = self.take()
                if kind != "name":
                    raise ExprError(f"expected a field name after {value!r}")
                node = ("fetch", node, ("lit", name), value == "?.")
            elif value == "[":
                self.take()
                key = self.expression(0)
                self.take("]")
                node = ("fetch", node, key, False)
            else:
                return node


def _type(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "map[string]interface {}" if isinstance(value, dict) else "[]interface {}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return bool(a == b)
    if type(a) is not type(b) and not (isinstance(a, dict) and isinstance(b, dict)):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if not ((_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise ExprError(f"invalid operation: {_type(a)} {op} {_type(b)}")
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _in(needle: Any, haystack: Any) -> bool:
    if haystack is None:
        return False
    if isinstance(haystack, list):
        return any(_equal(item, needle) for item in haystack)
    if isinstance(haystack, dict):
        return needle in haystack
    raise ExprError(f"operator in not defined on {_type(haystack)}")


def _bool(value: Any, op: str) -> bool:
    if not isinstance(value, bool):
        raise ExprError(f"invalid operation: {op} on {_type(value)}")
    return value


class _Eval:
    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env

    def run(self, node: Any) -> Any:
        kind = node[0]
        if kind == "lit":
            return None if node[1] is _NIL else node[1]
        if kind == "name":
            return self.env[node[1]]
        if kind == "array":
            return [self.run(item) for item in node[1]]
        if kind == "fetch":
            return self.fetch(self.run(node[1]), self.run(node[2]), optional=node[3])
        if kind == "not":
            return not _bool(self.run(node[1]), "!")
        if kind == "call":
            return self.env[node[1]](*(self.run(arg) for arg in node[2]))
        return self.binary(node[1], node[2], node[3])

    def binary(self, op: str, left: Any, right: Any) -> Any:
        a = self.run(left)
        if op in ("&&", "||"):
            if _bool(a, op) is (op == "||"):
                return a
            return _bool(self.run(right), op)
        b = self.run(right)
        if op in ("==", "!="):
            return _equal(a, b) is (op == "==")
        if op in ("in", "not in"):
            return _in(a, b) is (op == "in")
        return _compare(op, a, b)

    @staticmethod
    def fetch(obj: Any, key: Any, *, optional: bool) -> Any:
        if obj is None and optional:
            return None
        if isinstance(obj, dict):
            return obj.get(key)  # a missing key is the map's zero value: nil
        if isinstance(obj, list | str) and _number(key):
            index = int(key) + (len(obj) if key < 0 else 0)
            if not 0 <= index < len(obj):
                raise ExprError(f"index out of range: {key} (array length is {len(obj)})")
            return obj[index]
        raise ExprError(f"cannot fetch {key} from {_type(obj)}")


def _names(node: Any) -> set[str]:
    """The names a tree refers to (variables and functions)."""
    if isinstance(node, list):
        return {n for item in node for n in _names(item)}
    if not isinstance(node, tuple) or node[0] == "lit":
        return set()
    if node[0] == "name":
        return {node[1]}
    if node[0] == "call":
        return {node[1]} | _names(node[2])
    return {n for part in node[1:] for n in _names(part)}


def _environment(result: Any) -> dict[str, Any]:
    """Argo's ``EvalCondition`` environment (its helpers, for the values JSON decodes to)."""

    def as_float(value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ExprError(f"asFloat() not supported on {value!r}") from exc

    def as_int(value: Any) -> int:
        try:
            return int(value) if _number(value) else int(str(value), 10)
        except (TypeError, ValueError) as exc:
            raise ExprError(f"asInt() not supported on {value!r}") from exc

    return {
        "result": result,
        "asInt": as_int,
        "asFloat": as_float,
        "isNil": lambda _value: result is None,
        "default": lambda _value, fallback: fallback if result is None else result,
        "len": len,
    }


def evaluate(condition: str, result: Any) -> bool:
    """Evaluate an Argo condition against a measurement's ``result`` (decoded JSON).

    Raises:
        ExprError: the condition does not compile, fails at run time or is not a bool.
    """
    tree = _Parser(condition).parse()
    env = _environment(result)
    unknown = _names(tree) - set(env)
    if unknown:
        raise ExprError(f"unknown name {sorted(unknown)[0]}")
    value = _Eval(env).run(tree)
    if not isinstance(value, bool):
        raise ExprError(f"expected bool, but got {_type(value)}")
    return value


# --- one measurement, the metric's counters, the Rollout's reaction ------------------------------


@dataclass(frozen=True)
class Measurement:
    phase: str
    value: str = ""
    message: str = ""


def evaluate_result(result: Any, metric: dict[str, Any]) -> str:
    """``evaluate.EvaluateResult``: a measurement's phase from the metric's two conditions."""
    success_expr = metric.get("successCondition", "")
    failure_expr = metric.get("failureCondition", "")
    try:
        success = evaluate(success_expr, result) if success_expr else False
        failure = evaluate(failure_expr, result) if failure_expr else False
    except ExprError:
        return ERROR
    if not success_expr and not failure_expr:
        return SUCCESSFUL
    if success_expr and not failure_expr:
        failure = not success
    elif failure_expr and not success_expr:
        success = not failure
    if failure:
        return FAILED
    return SUCCESSFUL if success else INCONCLUSIVE


def measure(metric: dict[str, Any], url: str) -> Measurement:
    """One web-metric measurement (``webmetric.Provider.Run``) of ``url`` (the args resolved)."""
    web = metric["provider"]["web"]
    if web.get("jsonPath", "{$}") != "{$}":
        raise NotImplementedError("only jsonPath {$} (the whole body) is modelled")
    headers = {h["key"]: h["value"] for h in web.get("headers", [])}
    try:
        response = httpx.get(url, headers=headers, timeout=web.get("timeoutSeconds", 10))
    except httpx.HTTPError as exc:
        return Measurement(ERROR, message=str(exc))
    if not 200 <= response.status_code < 300:
        return Measurement(ERROR, message=f"received non 2xx response code: {response.status_code}")
    try:
        data = json.loads(response.content)
    except ValueError:
        text = response.text  # a body that is not JSON is evaluated as a string
        return Measurement(evaluate_result(text, metric), value=text)
    return Measurement(evaluate_result(data, metric), value=json.dumps(data))


@dataclass
class MetricResult:
    """``v1alpha1.MetricResult``'s counters, updated as ``runMeasurements`` does."""

    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    measurements: list[Measurement] = field(default_factory=list)

    def add(self, m: Measurement) -> None:
        self.measurements.append(m)
        if m.phase == ERROR:
            self.error += 1
            self.consecutive_error += 1
            return
        self.count += 1
        self.consecutive_error = 0
        if m.phase == SUCCESSFUL:
            self.successful += 1
        elif m.phase == FAILED:
            self.failed += 1
        else:
            self.inconclusive += 1


def _limit(metric: dict[str, Any], key: str, default: int) -> int:
    return int(metric.get(key, default))


def assess(metric: dict[str, Any], result: MetricResult) -> str:
    """``assessMetricStatus`` (no consecutiveSuccessLimit): the metric's phase so far."""
    phase = RUNNING
    failure_limit = _limit(metric, "failureLimit", 0)
    if failure_limit >= 0 and result.failed > failure_limit:
        phase = FAILED
    if result.inconclusive > _limit(metric, "inconclusiveLimit", 0):
        phase = INCONCLUSIVE
    errors = _limit(metric, "consecutiveErrorLimit", DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    if result.consecutive_error > errors:
        phase = ERROR
    if phase != RUNNING:
        return phase
    count = metric.get("count")
    if count is None and not metric.get("interval"):
        count = 1  # Metric.EffectiveCount: neither count nor interval means one measurement
    if count is not None and result.count >= int(count):
        return SUCCESSFUL
    return RUNNING  # no count: the metric runs until the rollout ends it


def rollout_action(phase: str) -> str:
    """What a canary does with its background analysis' phase (``rollout/analysis.go``)."""
    return {INCONCLUSIVE: "pause", ERROR: "abort", FAILED: "abort"}.get(phase, "continue")
