from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.contracts.messages import Transaction
from fraudstream.pipeline.validate import Invalid, validate
from tests.corpus import GOOD, cases

NOW = int(time.time() * 1000)


@pytest.mark.parametrize(("name", "value", "key", "reason"), cases(), ids=[c[0] for c in cases()])
def test_corpus(name: str, value: bytes | None, key: bytes | None, reason: str | None) -> None:
    res = validate(value, key, NOW)
    if reason is None:
        assert isinstance(res, Transaction), res
    else:
        assert isinstance(res, Invalid), f"{name} was accepted"
        assert res.reason == reason, res


def test_corpus_has_at_least_30_kinds_of_invalid_message() -> None:
    assert len([c for c in cases() if c[3] is not None]) >= 30


def test_ids_are_read_as_strings() -> None:
    res = validate(json.dumps({**GOOD, "customer_id": 17, "transaction_id": 5}).encode(), b"17", NOW)
    assert isinstance(res, Transaction) and str(res.customer_id) == "17" and str(res.transaction_id) == "5"


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.one_of(st.none(), st.binary(max_size=20)))
def test_never_raises_on_arbitrary_bytes(value: bytes, key: bytes | None) -> None:
    assert isinstance(validate(value, key, NOW), Transaction | Invalid)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(GOOD) + ["lat", "lon", "channel"]), json_values))
def test_accepts_only_what_the_contract_allows(fields: dict) -> None:
    body = {**GOOD, **fields}
    raw = json.dumps(body).encode()
    res = validate(raw, str(body.get("customer_id")).encode(), NOW)
    if isinstance(res, Transaction):
        assert isinstance(res.tx_amount, float) and math.isfinite(res.tx_amount) and res.tx_amount >= 0.005
        assert res.tx_datetime.tzinfo is not None
        for f in ("transaction_id", "customer_id", "terminal_id"):
            v = getattr(res, f)
            assert isinstance(v, str | int) and not isinstance(v, bool) and str(v).strip() == str(v) != ""
        assert len(res.currency) == 3 and res.currency.isupper()
