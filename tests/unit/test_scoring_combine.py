"""Final score, decision and reasons from rule results and model outputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from fraudstream.rules import compile_ruleset, evaluate, parse_ruleset
from fraudstream.rules.engine import RuleResult
from fraudstream.scoring import (
    Thresholds,
    combine,
    combine_scores,
    decide,
    decision_names,
    model_reasons,
)
from fraudstream.scoring.combine import APPROVE, DECISION_NAMES, DECLINE, REVIEW


def rule_result(score: list[float], forced: list[int] | None = None) -> RuleResult:
    n = len(score)
    return RuleResult(
        score=np.asarray(score, dtype=np.float64),
        forced=np.asarray(forced if forced is not None else [-1] * n, dtype=np.int8),
        fired=np.zeros((0, n), dtype=np.bool_),
        rule_ids=(),
    )


# --- thresholds -----------------------------------------------------------------------------


def test_thresholds_defaults_and_validation() -> None:
    t = Thresholds()
    assert (t.review, t.decline) == (0.5, 0.8)
    assert Thresholds(review=0.3, decline=0.3).review == 0.3
    with pytest.raises(ValidationError, match="above decline"):
        Thresholds(review=0.9, decline=0.5)
    with pytest.raises(ValidationError):
        Thresholds(review=-0.1)
    with pytest.raises(ValidationError):
        Thresholds(decline=1.5)


def test_decision_from_thresholds_is_inclusive() -> None:
    score = np.array([0.0, 0.49999, 0.5, 0.79, 0.8, 1.0])
    codes = decide(score, Thresholds())
    assert codes.dtype == np.int8
    assert codes.tolist() == [APPROVE, APPROVE, REVIEW, REVIEW, DECLINE, DECLINE]


def test_forced_decisions_override_thresholds() -> None:
    score = np.array([0.95, 0.95, 0.1, 0.1, 0.6])
    forced = np.array([0, -1, 2, 1, -1], dtype=np.int8)
    assert decide(score, Thresholds(), forced).tolist() == [APPROVE, DECLINE, DECLINE, REVIEW, REVIEW]


def test_decision_names() -> None:
    assert DECISION_NAMES == ("approve", "review", "decline")
    assert decision_names(np.array([2, 0, 1], dtype=np.int8)).tolist() == ["decline", "approve", "review"]


# --- score ----------------------------------------------------------------------------------


def test_rules_only_score() -> None:
    out = combine(rule_result([0.0, 0.6, 0.9]), None, Thresholds())
    np.testing.assert_allclose(out.score, [0.0, 0.6, 0.9])
    assert out.decision.tolist() == [APPROVE, REVIEW, DECLINE]
    assert out.decision_names().tolist() == ["approve", "review", "decline"]


def test_noisy_or_combination() -> None:
    rules = np.array([0.0, 0.5, 0.5, 1.0, 0.2])
    model = np.array([0.3, 0.0, 0.5, 0.1, np.nan])
    np.testing.assert_allclose(combine_scores(rules, model), [0.3, 0.5, 0.75, 1.0, 0.2])
    with pytest.raises(ValueError, match="shape"):
        combine_scores(rules, model[:2])


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.floats(0, 1), st.one_of(st.floats(0, 1), st.just(float("nan")))), min_size=1, max_size=30
    )
)
def test_combined_score_bounds(pairs: list[tuple[float, float]]) -> None:
    rules = np.array([p[0] for p in pairs])
    model = np.array([p[1] for p in pairs])
    s = combine_scores(rules, model)
    assert np.all((s >= 0) & (s <= 1))
    assert np.all(s >= rules - 1e-12)  # never below either source
    ok = ~np.isnan(model)
    assert np.all(s[ok] >= model[ok] - 1e-12)


def test_combine_without_rules_uses_model_or_n() -> None:
    out = combine(None, np.array([0.1, 0.85]), Thresholds())
    np.testing.assert_allclose(out.score, [0.1, 0.85])
    assert out.decision.tolist() == [APPROVE, DECLINE] and out.reasons == [[], []]
    empty = combine(None, None, n=3)
    assert empty.score.tolist() == [0.0] * 3 and empty.decision.tolist() == [APPROVE] * 3


def test_combine_returns_a_tuple() -> None:
    score, decision, reasons = combine(rule_result([0.2]), np.array([0.5]), Thresholds(review=0.55))
    assert score[0] == pytest.approx(0.6) and decision[0] == REVIEW and reasons == [[]]


# --- reasons --------------------------------------------------------------------------------


def test_reasons_list_fired_rules_then_model_contributions() -> None:
    rs = compile_ruleset(
        parse_ruleset(
            {
                "name": "t",
                "rules": [
                    {"id": "HIGH_AMOUNT", "condition": "TX_AMOUNT > 100", "action": {"score": 0.5}},
                    {"id": "NIGHT", "condition": "TX_DURING_NIGHT == 1", "action": {"decision": "review"}},
                ],
            }
        )
    )
    res = evaluate(
        rs, {"TX_AMOUNT": np.array([10.0, 500.0, 500.0]), "TX_DURING_NIGHT": np.array([0, 0, 1.0])}
    )
    names = ["TX_AMOUNT", "TERMINAL_ID_RISK_7DAY_WINDOW", "TX_DURING_NIGHT", "CUSTOMER_ID_NB_TX_1DAY_WINDOW"]
    contributions = np.array(
        [
            [-0.1, -0.2, -0.3, -0.4],
            [0.05, 0.31, -0.2, 0.12],
            [0.5, 0.31, 0.2, 0.12],
        ]
    )
    out = combine(
        res, np.array([0.1, 0.2, 0.3]), Thresholds(), contributions=contributions, feature_names=names
    )
    assert out.reasons[0] == []
    assert out.reasons[1] == [
        "rule:HIGH_AMOUNT",
        "model:TERMINAL_ID_RISK_7DAY_WINDOW=+0.31",
        "model:CUSTOMER_ID_NB_TX_1DAY_WINDOW=+0.12",
        "model:TX_AMOUNT=+0.05",
    ]
    assert out.reasons[2] == [
        "rule:HIGH_AMOUNT",
        "rule:NIGHT",
        "model:TX_AMOUNT=+0.50",
        "model:TERMINAL_ID_RISK_7DAY_WINDOW=+0.31",
        "model:TX_DURING_NIGHT=+0.20",
    ]
    assert out.decision.tolist() == [APPROVE, REVIEW, REVIEW]


def test_model_reasons_edge_cases() -> None:
    names = ["A", "B"]
    c = np.array([[np.nan, 0.4], [0.0, -1.0], [0.2, 0.3]])
    assert model_reasons(c, names) == {0: ["model:B=+0.40"], 2: ["model:B=+0.30", "model:A=+0.20"]}
    assert model_reasons(c, names, top_k=1) == {0: ["model:B=+0.40"], 2: ["model:B=+0.30"]}
    assert model_reasons(c, names, rows=np.array([False, True, True])) == {
        2: ["model:B=+0.30", "model:A=+0.20"]
    }
    assert model_reasons(c, names, rows=[0]) == {0: ["model:B=+0.40"]}
    assert model_reasons(np.zeros((0, 2)), names) == {}
    with pytest.raises(ValueError, match="does not match"):
        model_reasons(c, ["A"])


def test_explain_mask_limits_model_reasons() -> None:
    c = np.array([[0.5, 0.1], [0.5, 0.1]])
    out = combine(
        rule_result([0.9, 0.0]),
        None,
        contributions=c,
        feature_names=["A", "B"],
        explain=np.array([True, False]),
    )
    assert out.reasons == [["model:A=+0.50", "model:B=+0.10"], []]


def test_contributions_are_checked() -> None:
    with pytest.raises(ValueError, match="feature_names"):
        combine(rule_result([0.1]), None, contributions=np.ones((1, 2)))
    with pytest.raises(ValueError, match="rows"):
        combine(rule_result([0.1]), None, contributions=np.ones((2, 2)), feature_names=["A", "B"])


@settings(max_examples=100, deadline=None)
@given(
    c=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 15), st.integers(1, 8)),
        elements=st.floats(-5, 5, allow_nan=False),
        unique=True,  # no ties: the order of equal contributions is not specified
    ),
    k=st.integers(1, 4),
)
def test_top_k_matches_reference(c: np.ndarray, k: int) -> None:
    names = [f"F{j}" for j in range(c.shape[1])]
    got = model_reasons(c, names, top_k=k)
    for row in range(c.shape[0]):
        ranked = sorted(((v, j) for j, v in enumerate(c[row]) if v > 0), reverse=True)[:k]
        expected = [f"model:F{j}={v:+.2f}" for v, j in ranked]
        assert got.get(row, []) == expected
