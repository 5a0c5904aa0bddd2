"""The rule condition language: what parses, what is refused, and vectorised semantics.

The property test builds random expression trees, renders them as condition text and checks
the compiled, vectorised closure against a plain per-row Python interpreter of the same tree
(written independently here, following the documented semantics).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudstream.rules.expr import ConditionError, compile_condition
from fraudstream.rules.model import KNOWN_FEATURES

NAN = float("nan")


def run(condition: str, **features: list[float]) -> list[bool]:
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in features.items()}
    n = len(next(iter(arrays.values()))) if arrays else 3
    cond = compile_condition(condition, KNOWN_FEATURES, "T")
    out = cond(arrays, n)
    assert out.dtype == np.bool_ and out.shape == (n,)
    return out.tolist()


# --- accepted -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        "TX_AMOUNT > 220",
        "TX_AMOUNT >= 1000 and TX_DURING_NIGHT == 1",
        "not (TX_AMOUNT < 5 or TX_DURING_WEEKEND != 0)",
        "CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW / CUSTOMER_ID_NB_TX_10MIN_WINDOW < 3",
        "abs(TX_AMOUNT - CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW) > 2 * CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
        "max(TERMINAL_ID_RISK_1DAY_WINDOW, TERMINAL_ID_RISK_7DAY_WINDOW, 0.1) >= 0.5",
        "0 <= CUSTOMER_SECONDS_SINCE_PREV_TX < 60",
        "-TX_AMOUNT < -100 and +TX_AMOUNT > 1e2",
        "(TX_DURING_NIGHT > 0) + (TX_AMOUNT > 100) + (CUSTOMER_FIRST_TIME_AT_TERMINAL == 1) >= 2",
        "TX_DURING_NIGHT and TX_AMOUNT > 10",
        "True",
        "TX_AMOUNT > 1\n  and TX_DURING_NIGHT == 1",  # YAML block scalars carry newlines
    ],
)
def test_valid_conditions_compile(condition: str) -> None:
    cond = compile_condition(condition, KNOWN_FEATURES, "OK")
    assert cond.features <= set(KNOWN_FEATURES)


def test_used_features_are_recorded() -> None:
    cond = compile_condition("TX_AMOUNT > 2 * CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW", KNOWN_FEATURES)
    assert cond.features == {"TX_AMOUNT", "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"}


def test_allowed_names_are_a_parameter() -> None:
    cond = compile_condition("MY_FEATURE > 1", ["MY_FEATURE"], "X")
    assert cond({"MY_FEATURE": np.array([0.0, 2.0])}, 2).tolist() == [False, True]
    with pytest.raises(ConditionError, match="unknown feature 'TX_AMOUNT'"):
        compile_condition("TX_AMOUNT > 1", ["MY_FEATURE"], "X")


# --- refused --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("__import__('os')", "call to '__import__' not allowed"),
        ("__import__('os').system('true')", "only calls to abs, max, min allowed"),
        ("TX_AMOUNT.real > 1", "attribute access not allowed"),
        ("TX_AMOUNT.__class__", "attribute access not allowed"),
        ("TX_AMOUNT > 'a'", "strings not allowed"),
        ("TX_AMOUNT > b'a'", "strings not allowed"),
        ("f'{TX_AMOUNT}' == 1", "strings not allowed"),
        ("UNKNOWN_FEATURE > 1", "unknown feature 'UNKNOWN_FEATURE'"),
        ("TX_AMOUNTT > 1", "did you mean 'TX_AMOUNT'"),
        ("os > 1", "unknown feature 'os'"),
        ("TX_AMOUNT[0] > 1", "subscripts not allowed"),
        ("(lambda: 1)() > 0", "only calls to abs, max, min allowed"),
        ("lambda: 1", "lambdas not allowed"),
        ("[x for x in TX_AMOUNT]", "comprehensions not allowed"),
        ("sum(x for x in TX_AMOUNT)", "call to 'sum' not allowed"),
        ("TX_AMOUNT if TX_AMOUNT else 0", "conditional expressions not allowed"),
        ("(y := TX_AMOUNT) > 1", "assignment expressions not allowed"),
        ("TX_AMOUNT in (1, 2)", "operator 'in' not allowed"),
        ("TX_AMOUNT is None", "operator 'is' not allowed"),
        ("TX_AMOUNT ** 2 > 1", "operator '\\*\\*' not allowed"),
        ("TX_AMOUNT // 2 > 1", "operator '//' not allowed"),
        ("TX_AMOUNT % 2 > 1", "operator '%' not allowed"),
        ("TX_AMOUNT & 1", "operator '&' not allowed"),
        ("~TX_AMOUNT", "operator '~' not allowed"),
        ("None", "constant None not allowed"),
        ("1j > 0", "constant 1j not allowed"),
        ("1e999 > TX_AMOUNT", "not finite"),
        ("abs", "function 'abs' must be called"),
        ("abs(TX_AMOUNT, 1) > 0", "abs\\(\\) takes 1 argument"),
        ("max(TX_AMOUNT) > 0", "max\\(\\) takes at least 2"),
        ("max(*TX_AMOUNT) > 0", "starred expressions not allowed"),
        ("min(TX_AMOUNT, key=1) > 0", "no keyword arguments"),
        ("{1: 2}", "dict literals not allowed"),
        ("TX_AMOUNT >", "syntax error"),
        ("TX_AMOUNT = 1", "syntax error"),
        ("import os", "syntax error"),
        ("TX_AMOUNT > 1; 1", "syntax error"),
    ],
)
def test_forbidden_constructs_are_rejected(condition: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message) as info:
        compile_condition(condition, KNOWN_FEATURES, "BAD_RULE")
    assert info.value.rule_id == "BAD_RULE"
    assert str(info.value).startswith("rule 'BAD_RULE'")


def test_error_reports_the_column_of_the_offending_node() -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition("TX_AMOUNT > 1 and TX_AMOUNT.real > 2", KNOWN_FEATURES, "R7")
    assert info.value.column == 19
    assert "column 19" in str(info.value) and "'TX_AMOUNT.real'" in str(info.value)


def test_error_column_counts_characters_not_bytes() -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition("TX_AMOUNT > 1 and é > 2", KNOWN_FEATURES, "R")
    assert info.value.column == 19


def test_deep_nesting_is_refused_not_crashing() -> None:
    with pytest.raises(ConditionError, match="nested deeper|cannot parse|syntax error|longer"):
        compile_condition("-" * 500 + "TX_AMOUNT > 0", KNOWN_FEATURES, "DEEP")
    with pytest.raises(ConditionError, match="longer than"):
        compile_condition("TX_AMOUNT + " * 400 + "1 > 0", KNOWN_FEATURES, "LONG")


def test_blank_condition_is_refused() -> None:
    with pytest.raises(ConditionError, match="blank"):
        compile_condition("  \n ", KNOWN_FEATURES, "B")


# --- semantics ------------------------------------------------------------------------------


def test_comparisons_with_nan_are_false_including_not_equal() -> None:
    a = [1.0, NAN, 3.0]
    assert run("TX_AMOUNT > 0", TX_AMOUNT=a) == [True, False, True]
    assert run("TX_AMOUNT != 1", TX_AMOUNT=a) == [False, False, True]
    assert run("not (TX_AMOUNT == 1)", TX_AMOUNT=a) == [False, True, True]


def test_division_by_zero_is_zero() -> None:
    assert run("TX_AMOUNT / TX_DURING_NIGHT == 0", TX_AMOUNT=[5.0, 5.0, NAN], TX_DURING_NIGHT=[0, 2, 0]) == [
        True,
        False,
        True,
    ]
    assert run("TX_AMOUNT / TX_DURING_NIGHT > 2", TX_AMOUNT=[5.0, 5.0], TX_DURING_NIGHT=[0, 2]) == [
        False,
        True,
    ]


def test_chained_comparison() -> None:
    assert run("0 <= TX_AMOUNT < 60", TX_AMOUNT=[-1, 0, 59.9, 60, NAN]) == [False, True, True, False, False]


def test_numbers_as_booleans_and_booleans_as_numbers() -> None:
    assert run("TX_DURING_NIGHT", TX_DURING_NIGHT=[0, 1, NAN, -2]) == [False, True, False, True]
    assert run("(TX_AMOUNT > 1) + (TX_AMOUNT > 2) == 1", TX_AMOUNT=[0, 1.5, 3]) == [False, True, False]
    assert run("not TX_DURING_NIGHT", TX_DURING_NIGHT=[0, 1, NAN]) == [True, False, True]


def test_min_max_abs() -> None:
    x = {"TX_AMOUNT": [1.0, -5.0, NAN], "TX_DURING_NIGHT": [2.0, -1.0, 0.0]}
    assert run("max(TX_AMOUNT, TX_DURING_NIGHT) == 2", **x) == [True, False, False]
    assert run("min(TX_AMOUNT, TX_DURING_NIGHT, 0) == -5", **x) == [False, True, False]
    assert run("abs(TX_AMOUNT) == 5", **x) == [False, True, False]


def test_constant_condition_spreads_over_the_batch() -> None:
    assert run("1 < 2", TX_AMOUNT=[1.0, 2.0, 3.0, 4.0]) == [True] * 4
    assert run("False", TX_AMOUNT=[1.0, 2.0]) == [False, False]
    cond = compile_condition("2 > 1", KNOWN_FEATURES)
    assert cond({}, 0).shape == (0,)


def test_overflow_and_inf_minus_inf_do_not_warn() -> None:
    big = [1e308, 1e308]
    with np.errstate(all="raise"):  # the closure must set its own error state
        assert run("TX_AMOUNT * 10 - TX_AMOUNT * 10 > 0", TX_AMOUNT=big) == [False, False]


# --- property: vectorised == per-row reference ----------------------------------------------

FEATS = ("TX_AMOUNT", "CUSTOMER_SECONDS_SINCE_PREV_TX", "TX_DURING_NIGHT")
CMP_OPS = ("<", "<=", ">", ">=", "==", "!=")
Node = tuple[Any, ...]

values = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 2.0, 0.5, NAN]),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)
literals = st.one_of(st.sampled_from([0, 1, 2, 0.5, 100]), st.floats(-1e3, 1e3, allow_nan=False))


def _compare(nums: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.integers(1, 2).flatmap(
        lambda k: st.tuples(
            st.just("cmp"),
            st.lists(st.sampled_from(CMP_OPS), min_size=k, max_size=k),
            st.lists(nums, min_size=k + 1, max_size=k + 1),
        )
    )


def _extend_num(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.tuples(st.just("bin"), st.sampled_from("+-*/"), children, children),
        st.tuples(st.just("neg"), children),
        st.tuples(st.just("abs"), children),
        st.tuples(st.sampled_from(["min", "max"]), st.lists(children, min_size=2, max_size=3)),
        st.tuples(st.just("asnum"), _compare(children)),
    )


num_expr = st.recursive(
    st.one_of(st.sampled_from(FEATS).map(lambda n: ("feat", n)), literals.map(lambda v: ("lit", v))),
    _extend_num,
    max_leaves=8,
)
bool_expr = st.recursive(
    st.one_of(_compare(num_expr), num_expr.map(lambda x: ("truthy", x))),
    lambda ch: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), st.lists(ch, min_size=2, max_size=3)),
        st.tuples(st.just("not"), ch),
    ),
    max_leaves=4,
)


def render(node: Node) -> str:
    tag = node[0]
    if tag == "feat":
        return node[1]
    if tag == "lit":
        return f"({node[1]!r})"
    if tag == "bin":
        return f"({render(node[2])} {node[1]} {render(node[3])})"
    if tag == "neg":
        return f"(-{render(node[1])})"
    if tag in ("abs", "min", "max"):
        args = [node[1]] if tag == "abs" else node[1]
        return f"{tag}({', '.join(render(a) for a in args)})"
    if tag in ("asnum", "truthy"):
        return f"({render(node[1])})"
    if tag == "cmp":
        text = render(node[2][0])
        for op, operand in zip(node[1], node[2][1:], strict=True):
            text += f" {op} {render(operand)}"
        return f"({text})"
    if tag in ("and", "or"):
        return "(" + f" {tag} ".join(render(p) for p in node[1]) + ")"
    if tag == "not":
        return f"(not {render(node[1])})"
    raise AssertionError(tag)


def ref_num(node: Node, row: dict[str, float]) -> float:
    """Per-row reference: the documented semantics, with plain Python floats."""
    tag = node[0]
    if tag == "feat":
        return row[node[1]]
    if tag == "lit":
        return float(node[1])
    if tag == "bin":
        a, b = ref_num(node[2], row), ref_num(node[3], row)
        op = node[1]
        if op == "/":
            return 0.0 if b == 0 else a / b
        return a + b if op == "+" else a - b if op == "-" else a * b
    if tag == "neg":
        return -ref_num(node[1], row)
    if tag == "abs":
        return abs(ref_num(node[1], row))
    if tag in ("min", "max"):
        args = [ref_num(a, row) for a in node[1]]
        if any(math.isnan(a) for a in args):
            return NAN
        return min(args) if tag == "min" else max(args)
    if tag == "asnum":
        return 1.0 if ref_bool(node[1], row) else 0.0
    raise AssertionError(tag)


def ref_bool(node: Node, row: dict[str, float]) -> bool:
    tag = node[0]
    if tag == "truthy":
        v = ref_num(node[1], row)
        return v != 0 and not math.isnan(v)
    if tag == "cmp":
        vals = [ref_num(o, row) for o in node[2]]
        ok = True
        for op, a, b in zip(node[1], vals, vals[1:], strict=False):
            if math.isnan(a) or math.isnan(b):
                ok = False
            elif op == "<":
                ok &= a < b
            elif op == "<=":
                ok &= a <= b
            elif op == ">":
                ok &= a > b
            elif op == ">=":
                ok &= a >= b
            elif op == "==":
                ok &= a == b
            else:
                ok &= a != b
        return ok
    if tag == "and":
        return all(ref_bool(p, row) for p in node[1])
    if tag == "or":
        return any(ref_bool(p, row) for p in node[1])
    if tag == "not":
        return not ref_bool(node[1], row)
    raise AssertionError(tag)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=bool_expr, data=st.data())
def test_vectorised_matches_per_row_reference(tree: Node, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 12), label="n")
    columns = {f: data.draw(st.lists(values, min_size=n, max_size=n), label=f) for f in FEATS}
    source = render(tree)
    cond = compile_condition(source, FEATS, "PROP")
    got = cond({k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}, n)
    rows = [{f: columns[f][i] for f in FEATS} for i in range(n)]
    expected = [ref_bool(tree, row) for row in rows]
    assert got.tolist() == expected, source
