"""Rule conditions compiled, safely, into vectorised NumPy closures.

Conditions are written by analysts and stored in the database, so they are untrusted text.
They are never given to ``eval``/``exec``/``compile``: :func:`ast.parse` (mode ``'eval'``) only
builds a syntax tree, and :class:`_Compiler` walks it against a strict whitelist, turning each
allowed node into a small closure over NumPy arrays. Anything else (attributes, subscripts,
strings, lambdas, comprehensions, calls other than ``abs``/``min``/``max``, names that are not
features) is rejected with an error naming the rule id and the column.

The language, evaluated over a batch (one float64 array per feature, length N):

* numbers: feature names, finite numeric literals, ``True``/``False``;
* arithmetic ``+ - * /`` and unary ``- +``; **division by zero gives 0** (also ``nan / 0``),
  so a ratio with an empty denominator (no history) never fires a ``>`` rule by accident;
* comparisons ``< <= > >= == !=`` (chains like ``0 < x <= 5`` work); a comparison involving
  NaN is **False**, ``!=`` included, so a missing value never fires a rule;
* ``and``, ``or``, ``not`` (element-wise, no short-circuit);
* ``abs(x)``, ``min(a, b, ...)``, ``max(a, b, ...)`` (NaN propagates through ``min``/``max``);
* a boolean used as a number is 0/1 (``(a > 1) + (b > 2) >= 2`` counts conditions); a number
  used as a boolean is true when non-zero and not NaN (``TX_DURING_NIGHT and ...``).
"""

from __future__ import annotations

import ast
import difflib
import functools
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from fraudstream.rules.model import MAX_CONDITION_LENGTH, RuleSetError

__all__ = ["FUNCTIONS", "CompiledCondition", "ConditionError", "compile_condition"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Features = Mapping[str, FloatArray]
_Eval = Callable[[Features], np.ndarray]
_Kind = Literal["num", "bool"]

#: Whitelisted functions and their arity (min, max; None = unbounded).
FUNCTIONS: dict[str, tuple[int, int | None]] = {"abs": (1, 1), "min": (2, None), "max": (2, None)}
MAX_DEPTH = 64

_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Slice: "slices",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.JoinedStr: "strings",
    ast.FormattedValue: "strings",
    ast.IfExp: "conditional expressions",
    ast.NamedExpr: "assignment expressions",
    ast.List: "list literals",
    ast.Tuple: "tuple literals",
    ast.Set: "set literals",
    ast.Dict: "dict literals",
    ast.Starred: "starred expressions",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_BINOPS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_OTHER_BINOPS: dict[type[ast.operator], str] = {
    ast.Pow: "**",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
}
_COMPARE_UFUNCS: dict[type[ast.cmpop], Callable[..., np.ndarray]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
}
_OTHER_CMPOPS: dict[type[ast.cmpop], str] = {
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


class ConditionError(RuleSetError):
    """A condition that is not valid rule language; says which rule and where."""

    def __init__(self, rule_id: str, message: str, column: int | None = None) -> None:
        self.rule_id = rule_id
        self.column = column
        self.reason = message
        where = f", column {column}" if column is not None else ""
        super().__init__(f"rule {rule_id!r}{where}: {message}")


@dataclass(frozen=True)
class CompiledCondition:
    """A condition ready to run: ``cond(features, n)`` is a bool array of length ``n``."""

    source: str
    features: frozenset[str]
    _fn: _Eval

    def __call__(self, features: Features, n: int) -> BoolArray:
        with np.errstate(all="ignore"):  # inf - inf, overflow: IEEE results, no warnings
            result = self._fn(features)
        if result.shape == (n,):
            return result
        # Constant conditions (no feature involved) are 0-d: spread them over the batch.
        return np.broadcast_to(result, (n,)).copy()


def compile_condition(condition: str, allowed: Collection[str], rule_id: str = "?") -> CompiledCondition:
    """Parse and check ``condition`` against the whitelist; raise :class:`ConditionError` if bad.

    ``allowed`` is the set of feature names the condition may use.
    """
    if len(condition) > MAX_CONDITION_LENGTH:
        raise ConditionError(rule_id, f"condition longer than {MAX_CONDITION_LENGTH} characters")
    # One line, so columns are plain offsets into what the author wrote (YAML block scalars
    # may carry newlines, which Python's expression grammar only accepts inside brackets).
    source = " ".join(condition.split())
    if not source:
        raise ConditionError(rule_id, "condition is blank")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        # offset 0 / None: the expression ended too early; point just past its end.
        column = exc.offset if exc.offset and exc.offset > 0 else len(source) + 1
        raise ConditionError(rule_id, f"syntax error: {exc.msg}", column) from None
    except (RecursionError, MemoryError, ValueError) as exc:  # absurd nesting, NUL bytes
        raise ConditionError(rule_id, f"cannot parse: {type(exc).__name__}") from None
    compiler = _Compiler(source, frozenset(allowed), rule_id)
    kind, fn = compiler.visit(tree.body, 0)
    return CompiledCondition(source, frozenset(compiler.used), _as_bool(kind, fn))


# --- closures --------------------------------------------------------------------------------


def _as_num(kind: _Kind, fn: _Eval) -> _Eval:
    if kind == "num":
        return fn
    return lambda f: np.asarray(fn(f), dtype=np.float64)


def _as_bool(kind: _Kind, fn: _Eval) -> _Eval:
    if kind == "bool":
        return fn

    def truthy(f: Features) -> np.ndarray:
        v = fn(f)
        return (v != 0) & ~np.isnan(v)

    return truthy


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.zeros(a.shape, dtype=np.float64)
    np.divide(a, b, out=out, where=b != 0)
    return out


def _not_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b) & ~np.isnan(a) & ~np.isnan(b)


_ARITH: dict[type[ast.operator], Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: _safe_divide,
}


class _Compiler:
    """Walks a syntax tree, accepting only whitelisted nodes, and builds the closures."""

    def __init__(self, source: str, allowed: frozenset[str], rule_id: str) -> None:
        self.source = source
        self.allowed = allowed
        self.rule_id = rule_id
        self.used: set[str] = set()

    def error(self, node: ast.AST, message: str, quote: bool = True) -> ConditionError:
        """An error at ``node``: 1-based column and, if ``quote``, the offending text."""
        col = getattr(node, "col_offset", None)
        if col is not None:
            # col_offset counts UTF-8 bytes; report characters, 1-based.
            col = len(self.source.encode()[:col].decode(errors="ignore")) + 1
            segment = ast.get_source_segment(self.source, node) if quote else None
            if segment:
                shown = segment if len(segment) <= 40 else segment[:37] + "..."
                message = f"{message}: {shown!r}"
        return ConditionError(self.rule_id, message, col)

    def visit(self, node: ast.AST, depth: int) -> tuple[_Kind, _Eval]:
        if depth > MAX_DEPTH:
            raise self.error(node, f"expression nested deeper than {MAX_DEPTH} levels")
        depth += 1
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node, depth)
        if isinstance(node, ast.Compare):
            return self.compare(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        what = _FORBIDDEN.get(type(node), f"{type(node).__name__} expressions")
        raise self.error(node, f"{what} not allowed")

    def constant(self, node: ast.Constant) -> tuple[_Kind, _Eval]:
        value = node.value
        if isinstance(value, bool):
            b = np.asarray(value, dtype=np.bool_)  # 0-d: broadcasts, and ~ is logical not
            return "bool", lambda f: b
        if isinstance(value, int | float):
            if not math.isfinite(float(value)):
                raise self.error(node, "numeric literal is not finite")
            x = np.asarray(value, dtype=np.float64)
            return "num", lambda f: x
        if isinstance(value, str | bytes):
            raise self.error(node, "strings not allowed")
        raise self.error(node, f"constant {value!r} not allowed (only numbers)")

    def name(self, node: ast.Name) -> tuple[_Kind, _Eval]:
        name = node.id
        if name not in self.allowed:
            if name in FUNCTIONS:
                raise self.error(node, f"function {name!r} must be called", quote=False)
            hint = difflib.get_close_matches(name, sorted(self.allowed), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise self.error(node, f"unknown feature {name!r}{suffix}", quote=False)
        self.used.add(name)
        return "num", lambda f: f[name]

    def unary(self, node: ast.UnaryOp, depth: int) -> tuple[_Kind, _Eval]:
        kind, fn = self.visit(node.operand, depth)
        if isinstance(node.op, ast.Not):
            operand = _as_bool(kind, fn)
            return "bool", lambda f: ~operand(f)
        if isinstance(node.op, ast.USub):
            num = _as_num(kind, fn)
            return "num", lambda f: np.negative(num(f))
        if isinstance(node.op, ast.UAdd):
            return "num", _as_num(kind, fn)
        raise self.error(node, "operator '~' not allowed")

    def binop(self, node: ast.BinOp, depth: int) -> tuple[_Kind, _Eval]:
        op_type = type(node.op)
        if op_type not in _ARITH:
            symbol = _OTHER_BINOPS.get(op_type, op_type.__name__)
            raise self.error(node, f"operator {symbol!r} not allowed (only + - * /)")
        left = _as_num(*self.visit(node.left, depth))
        right = _as_num(*self.visit(node.right, depth))
        ufunc = _ARITH[op_type]
        return "num", lambda f: ufunc(left(f), right(f))

    def boolop(self, node: ast.BoolOp, depth: int) -> tuple[_Kind, _Eval]:
        parts = [_as_bool(*self.visit(v, depth)) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def run(f: Features) -> np.ndarray:
            result = parts[0](f)
            for part in parts[1:]:
                result = combine(result, part(f))
            return result

        return "bool", run

    def compare(self, node: ast.Compare, depth: int) -> tuple[_Kind, _Eval]:
        funcs: list[Callable[..., np.ndarray]] = []
        for op in node.ops:
            if isinstance(op, ast.NotEq):
                funcs.append(_not_equal)
            elif type(op) in _COMPARE_UFUNCS:
                funcs.append(_COMPARE_UFUNCS[type(op)])
            else:
                raise self.error(node, f"operator {_OTHER_CMPOPS.get(type(op), '?')!r} not allowed")
        operands = [_as_num(*self.visit(v, depth)) for v in [node.left, *node.comparators]]

        def run(f: Features) -> np.ndarray:
            values = [o(f) for o in operands]  # each operand once, as Python's chains do
            result = funcs[0](values[0], values[1])
            for i in range(1, len(funcs)):
                result = result & funcs[i](values[i], values[i + 1])
            return result

        return "bool", run

    def call(self, node: ast.Call, depth: int) -> tuple[_Kind, _Eval]:
        allowed = ", ".join(sorted(FUNCTIONS))
        if not isinstance(node.func, ast.Name):
            raise self.error(node, f"only calls to {allowed} allowed")
        fname = node.func.id
        if fname not in FUNCTIONS:
            raise self.error(node, f"call to {fname!r} not allowed (allowed: {allowed})")
        if node.keywords:
            raise self.error(node, f"{fname}() takes no keyword arguments")
        for arg_node in node.args:
            if isinstance(arg_node, ast.Starred):
                raise self.error(arg_node, "starred expressions not allowed")
        low, high = FUNCTIONS[fname]
        n_args = len(node.args)
        if n_args < low or (high is not None and n_args > high):
            expected = str(low) if low == high else f"at least {low}"
            raise self.error(node, f"{fname}() takes {expected} argument(s), got {n_args}")
        args = [_as_num(*self.visit(a, depth)) for a in node.args]
        if fname == "abs":
            (arg,) = args
            return "num", lambda f: np.abs(arg(f))
        reducer = np.minimum if fname == "min" else np.maximum  # both propagate NaN
        return "num", lambda f: functools.reduce(reducer, (a(f) for a in args))
