"""Rule-set documents, compilation and batch evaluation (scores, forced decisions, fired ids)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fraudstream.rules import (
    APPROVE,
    DECLINE,
    KNOWN_FEATURES,
    NO_DECISION,
    REVIEW,
    RuleSet,
    RuleSetError,
    compile_ruleset,
    default_ruleset,
    evaluate,
    parse_ruleset,
    read_ruleset,
)

YAML_DOC = """
name: test
description: a test rule set
rules:
  - id: BIG
    description: big amount
    condition: TX_AMOUNT > 100
    action: {score: 0.4}
  - id: NIGHT_BIG
    condition: TX_DURING_NIGHT == 1 and TX_AMOUNT > 100
    action: {score: 0.3, decision: review}
  - id: HUGE
    condition: TX_AMOUNT > 1000
    action: {decision: decline}
  - id: TRUSTED
    condition: TX_AMOUNT < 1
    action: {score: -0.5, decision: approve}
"""


def doc(*rules: dict[str, object], name: str = "t") -> dict[str, object]:
    return {"name": name, "rules": list(rules)}


def rule(rid: str, condition: str, **action: object) -> dict[str, object]:
    return {"id": rid, "condition": condition, "action": action or {"score": 0.1}}


# --- documents ------------------------------------------------------------------------------


def test_parse_yaml_json_and_mapping_agree(tmp_path: Path) -> None:
    from_yaml = parse_ruleset(YAML_DOC)
    data = yaml.safe_load(YAML_DOC)
    from_json_text = parse_ruleset(json.dumps(data))
    from_mapping = parse_ruleset(data)
    (tmp_path / "r.json").write_text(json.dumps(data))
    (tmp_path / "r.yaml").write_text(YAML_DOC)
    assert from_yaml == from_json_text == from_mapping == read_ruleset(tmp_path / "r.json")
    assert read_ruleset(tmp_path / "r.yaml") == from_yaml
    assert [r.id for r in from_yaml.rules] == ["BIG", "NIGHT_BIG", "HUGE", "TRUSTED"]
    assert from_yaml.rules[1].action.decision == "review"


def test_yaml_yes_no_on_off_stay_strings() -> None:
    rs = parse_ruleset(
        "name: t\nrules:\n"
        "  - {id: OFF, condition: TX_AMOUNT > 1, action: {score: 0.1}, enabled: true}\n"
        "  - {id: NO, condition: TX_AMOUNT > 2, action: {score: 0.1}, enabled: false}\n"
    )
    assert [(r.id, r.enabled) for r in rs.rules] == [("OFF", True), ("NO", False)]


def test_body_round_trips_and_checksum_is_stable() -> None:
    rs = parse_ruleset(YAML_DOC)
    again = RuleSet.model_validate(json.loads(json.dumps(rs.body())))
    assert again == rs
    assert again.checksum() == rs.checksum()
    assert len(rs.checksum()) == 64
    changed = parse_ruleset(YAML_DOC.replace("TX_AMOUNT > 100\n", "TX_AMOUNT > 101\n"))
    assert changed.checksum() != rs.checksum()


def test_unknown_feature_rejected_at_load_naming_the_rule() -> None:
    with pytest.raises(RuleSetError, match="rule 'R2', column 18: unknown feature 'NOT_A_FEATURE'"):
        parse_ruleset(doc(rule("R1", "TX_AMOUNT > 1"), rule("R2", "TX_AMOUNT > 1 or NOT_A_FEATURE > 2")))


def test_allowed_feature_list_is_overridable() -> None:
    custom = ["TX_AMOUNT", "MY_NEW_FEATURE"]
    rs = parse_ruleset(doc(rule("R", "MY_NEW_FEATURE > 1")), features=custom)
    assert compile_ruleset(rs, custom).features == {"MY_NEW_FEATURE"}
    with pytest.raises(RuleSetError, match="unknown feature 'MY_NEW_FEATURE'"):
        parse_ruleset(doc(rule("R", "MY_NEW_FEATURE > 1")))
    with pytest.raises(RuleSetError, match="unknown feature 'TX_DURING_NIGHT'"):
        compile_ruleset(parse_ruleset(doc(rule("R", "TX_DURING_NIGHT > 0"))), custom)


def test_disabled_rules_are_checked_but_not_run() -> None:
    rs = parse_ruleset(doc(rule("ON", "TX_AMOUNT > 1"), {**rule("OFF", "TX_AMOUNT > 0"), "enabled": False}))
    compiled = compile_ruleset(rs)
    assert compiled.rule_ids == ("ON",)
    with pytest.raises(RuleSetError, match="rule 'OFF'"):
        parse_ruleset(doc({**rule("OFF", "TX_AMOUNT.real > 0"), "enabled": False}))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (doc(rule("A", "TX_AMOUNT > 1"), rule("A", "TX_AMOUNT > 2")), "duplicate rule ids: A"),
        (doc({"id": "A", "condition": "TX_AMOUNT > 1", "action": {}}), r"rules\.0 \(A\)\.action"),
        (doc(rule("A", "TX_AMOUNT > 1", decision="block")), "decision"),
        (doc(rule("A", "TX_AMOUNT > 1", score=1.5)), "less than or equal to 1"),
        (doc({**rule("A", "TX_AMOUNT > 1"), "extra": 1}), "extra"),
        (doc(rule("bad id!", "TX_AMOUNT > 1")), "pattern"),
        (doc(rule("A", "   ")), "blank"),
        ({"rules": []}, "name"),
        ([1, 2], "must be a mapping"),
        ("name: [unclosed", "not valid YAML"),
    ],
)
def test_invalid_documents(document: object, message: str) -> None:
    with pytest.raises(RuleSetError, match=message):
        parse_ruleset(document)  # type: ignore[arg-type]


def test_read_ruleset_reports_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(RuleSetError, match="cannot read"):
        read_ruleset(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RuleSetError, match="not valid JSON"):
        read_ruleset(bad)


# --- evaluation -----------------------------------------------------------------------------


def test_forced_decision_precedence_decline_over_review_over_approve() -> None:
    rs = compile_ruleset(
        parse_ruleset(
            doc(
                rule("APPROVE", "TX_AMOUNT >= 1", decision="approve"),
                rule("REVIEW", "TX_AMOUNT >= 2", decision="review"),
                rule("DECLINE", "TX_AMOUNT >= 3", decision="decline"),
                rule("APPROVE_AGAIN", "TX_AMOUNT >= 4", decision="approve"),
                rule("SCORE_ONLY", "TX_AMOUNT >= 0", score=0.2),
            )
        )
    )
    res = evaluate(rs, {"TX_AMOUNT": np.array([0.0, 1.0, 2.0, 3.0, 4.0, np.nan])})
    assert res.forced.dtype == np.int8
    assert res.forced.tolist() == [NO_DECISION, APPROVE, REVIEW, DECLINE, DECLINE, NO_DECISION]
    assert (APPROVE, REVIEW, DECLINE) == (0, 1, 2)


def test_score_is_sum_clipped_to_unit_interval() -> None:
    rs = compile_ruleset(
        parse_ruleset(
            doc(
                rule("A", "TX_AMOUNT > 0", score=0.7),
                rule("B", "TX_AMOUNT > 1", score=0.7),
                rule("MINUS", "TX_AMOUNT < 0", score=-0.3),
            )
        )
    )
    res = evaluate(rs, {"TX_AMOUNT": np.array([-1.0, 0.5, 2.0, 0.0])})
    np.testing.assert_allclose(res.score, [0.0, 0.7, 1.0, 0.0])


def test_fired_matrix_and_fired_ids() -> None:
    rs = parse_ruleset(YAML_DOC)
    amounts = np.array([50.0, 150.0, 150.0, 5000.0, 0.5])
    night = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    res = evaluate(compile_ruleset(rs), {"TX_AMOUNT": amounts, "TX_DURING_NIGHT": night})
    assert res.fired.shape == (4, 5) and res.fired.dtype == np.bool_
    assert res.rule_ids == ("BIG", "NIGHT_BIG", "HUGE", "TRUSTED")
    assert res.fired_ids() == {
        1: ["BIG"],
        2: ["BIG", "NIGHT_BIG"],
        3: ["BIG", "NIGHT_BIG", "HUGE"],
        4: ["TRUSTED"],
    }
    assert res.fired_ids_for(0) == [] and res.fired_ids_for(3) == ["BIG", "NIGHT_BIG", "HUGE"]
    np.testing.assert_allclose(res.score, [0.0, 0.4, 0.7, 0.7, 0.0])
    assert res.forced.tolist() == [-1, -1, REVIEW, DECLINE, APPROVE]
    assert len(res) == 5


def test_evaluate_matches_per_row_reference_on_random_data() -> None:
    rng = np.random.default_rng(42)
    n = 2000
    features = {name: rng.normal(1.0, 2.0, n) for name in KNOWN_FEATURES}
    for name in KNOWN_FEATURES:
        features[name][rng.random(n) < 0.05] = np.nan
        features[name][rng.random(n) < 0.05] = 0.0
    rules = [
        rule("R0", "TX_AMOUNT > 1", score=0.3),
        rule("R1", "TX_AMOUNT / TX_DURING_NIGHT > 2 or TERMINAL_ID_RISK_7DAY_WINDOW < -1", score=0.25),
        rule("R2", "abs(CUSTOMER_SECONDS_SINCE_PREV_TX) < 1 and not TX_DURING_WEEKEND", decision="review"),
        rule("R3", "max(TX_AMOUNT, AMOUNT_TO_CUSTOMER_AVG_30DAY) >= 3", score=0.5, decision="decline"),
        rule("R4", "TX_AMOUNT != 0", score=-0.1, decision="approve"),
    ]
    res = evaluate(parse_ruleset(doc(*rules)), features)

    def nan(x: float) -> bool:
        return x != x

    def div(a: float, b: float) -> float:
        return 0.0 if b == 0 else a / b

    for i in range(n):
        f = {k: float(v[i]) for k, v in features.items()}
        fired = [
            f["TX_AMOUNT"] > 1,
            div(f["TX_AMOUNT"], f["TX_DURING_NIGHT"]) > 2 or f["TERMINAL_ID_RISK_7DAY_WINDOW"] < -1,
            abs(f["CUSTOMER_SECONDS_SINCE_PREV_TX"]) < 1
            and not (f["TX_DURING_WEEKEND"] != 0 and not nan(f["TX_DURING_WEEKEND"])),
            (not nan(f["TX_AMOUNT"]) and not nan(f["AMOUNT_TO_CUSTOMER_AVG_30DAY"]))
            and max(f["TX_AMOUNT"], f["AMOUNT_TO_CUSTOMER_AVG_30DAY"]) >= 3,
            f["TX_AMOUNT"] != 0 and not nan(f["TX_AMOUNT"]),
        ]
        scores = [0.3, 0.25, 0.0, 0.5, -0.1]
        codes = [-1, -1, REVIEW, DECLINE, APPROVE]
        assert res.fired[:, i].tolist() == fired, i
        assert res.score[i] == pytest.approx(
            min(1.0, max(0.0, sum(s for s, x in zip(scores, fired, strict=True) if x)))
        )
        assert res.forced[i] == max([c for c, x in zip(codes, fired, strict=True) if x], default=-1)


def test_evaluate_checks_inputs() -> None:
    rs = compile_ruleset(parse_ruleset(doc(rule("R", "TX_AMOUNT > TX_DURING_NIGHT"))))
    with pytest.raises(KeyError, match="TX_DURING_NIGHT"):
        evaluate(rs, {"TX_AMOUNT": np.ones(3)})
    with pytest.raises(ValueError, match="one length"):
        evaluate(rs, {"TX_AMOUNT": np.ones(3), "TX_DURING_NIGHT": np.ones(4)})
    with pytest.raises(ValueError, match="n=2"):
        evaluate(rs, {"TX_AMOUNT": np.ones(3), "TX_DURING_NIGHT": np.ones(3)}, n=2)


def test_evaluate_accepts_lists_and_uncompiled_rulesets_and_empty_batches() -> None:
    rs = parse_ruleset(doc(rule("R", "TX_AMOUNT > 1", score=0.5)))
    res = evaluate(rs, {"TX_AMOUNT": [0, 2]})
    assert res.score.tolist() == [0.0, 0.5]
    empty = evaluate(rs, {"TX_AMOUNT": np.array([], dtype=np.float64)})
    assert empty.score.shape == (0,) and empty.fired.shape == (1, 0) and empty.fired_ids() == {}


def test_rule_set_without_rules() -> None:
    res = evaluate(compile_ruleset(RuleSet(name="empty")), {"TX_AMOUNT": np.ones(3)})
    assert res.score.tolist() == [0.0] * 3
    assert res.forced.tolist() == [-1] * 3
    assert res.fired.shape == (0, 3)
    assert res.fired_ids() == {}


def test_constant_rule_uses_batch_size() -> None:
    rs = compile_ruleset(parse_ruleset(doc(rule("ALWAYS", "1 > 0", score=0.1))))
    assert evaluate(rs, {"TX_AMOUNT": np.ones(4)}).fired.sum() == 4
    assert evaluate(rs, {}, n=2).score.tolist() == [0.1, 0.1]


# --- the shipped rule set --------------------------------------------------------------------


def _quiet_batch(n: int) -> dict[str, np.ndarray]:
    """Features of ordinary transactions: nothing should fire."""
    f = {name: np.zeros(n) for name in KNOWN_FEATURES}
    f["TX_AMOUNT"][:] = 40.0
    f["CUSTOMER_ID_NB_TX_30DAY_WINDOW"][:] = 60
    f["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"][:] = 45.0
    f["AMOUNT_TO_CUSTOMER_AVG_30DAY"][:] = 40 / 45
    f["CUSTOMER_ID_NB_TX_10MIN_WINDOW"][:] = 1
    f["CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW"][:] = 40.0
    f["CUSTOMER_ID_NB_TX_1HOUR_WINDOW"][:] = 1
    f["CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW"][:] = 40.0
    f["CUSTOMER_SECONDS_SINCE_PREV_TX"][:] = 20000
    f["TERMINAL_ID_NB_TX_7DAY_WINDOW"][:] = 20
    f["TERMINAL_ID_NB_TX_30DAY_WINDOW"][:] = 80
    return f


def test_default_ruleset_loads_and_is_documented() -> None:
    rs = default_ruleset()
    compiled = compile_ruleset(rs)
    assert rs.name == "default"
    assert len(compiled.rules) >= 6
    assert all(r.description for r in rs.rules)
    assert compiled.features <= set(KNOWN_FEATURES)


def test_default_ruleset_quiet_on_ordinary_and_fires_on_patterns() -> None:
    rs = compile_ruleset(default_ruleset())
    f = _quiet_batch(5)
    # 1: very high amount; 2: card-testing probe burst; 3: cash-out after probes;
    # 4: compromised terminal.
    f["TX_AMOUNT"][1] = 1500.0
    f["CUSTOMER_ID_NB_TX_10MIN_WINDOW"][2] = 5
    f["CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW"][2] = 6.0
    f["TX_AMOUNT"][2] = 1.2
    f["TX_AMOUNT"][3] = 800.0
    f["CUSTOMER_ID_NB_TX_1HOUR_WINDOW"][3] = 6
    f["CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW"][3] = 806.0
    f["TERMINAL_ID_RISK_7DAY_WINDOW"][4] = 0.8
    res = evaluate(rs, f)
    ids = res.fired_ids()
    assert 0 not in ids and res.score[0] == 0 and res.forced[0] == NO_DECISION
    assert "VERY_HIGH_AMOUNT" in ids[1] and res.forced[1] == REVIEW
    assert "CARD_TESTING_PROBE" in ids[2] and res.forced[2] == REVIEW
    assert "CARD_TESTING_CASHOUT" in ids[3] and res.forced[3] == DECLINE
    assert ids[4] == ["RISKY_TERMINAL"] and res.score[4] >= 0.5
