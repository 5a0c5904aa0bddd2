from __future__ import annotations

from datetime import timedelta

import msgspec
import numpy as np
import pandas as pd
import pytest

from fraudstream.contracts.messages import Label, Transaction
from fraudstream.producer.encode import (
    LiveTemplates,
    encode_labels,
    encode_transactions,
    parse_duration,
    quoted,
)
from fraudstream.producer.schedule import replay_schedule


def _frame(n: int = 6) -> pd.DataFrame:
    t0 = pd.Timestamp("2018-04-01T00:00:00Z")
    return pd.DataFrame({
        "transaction_id": [str(i) for i in range(n)],
        "tx_datetime": pd.Series([t0 + pd.Timedelta(hours=12 * i) for i in range(n)]),
        "customer_id": [str(i % 2) for i in range(n)],
        "terminal_id": [str(10 + i) for i in range(n)],
        "tx_amount": [1.5 + i for i in range(n)],
        "currency": ["EUR"] * n,
        "is_fraud": [i == 3 for i in range(n)],
        "fraud_scenario": [2 if i == 3 else 0 for i in range(n)],
    })


def test_transactions_round_trip_through_the_contract() -> None:
    f = _frame()
    f.loc[1, "transaction_id"] = 'weird "id"\n\u00e9'
    msgs = encode_transactions(f)
    dec = msgspec.json.Decoder(Transaction)
    for raw, row in zip(msgs, f.itertuples(), strict=True):
        tx = dec.decode(raw)
        assert tx.transaction_id == row.transaction_id
        assert tx.tx_datetime == row.tx_datetime.to_pydatetime()
        assert tx.customer_id == row.customer_id and tx.tx_amount == row.tx_amount


def test_subsecond_times_and_optional_fields() -> None:
    f = _frame(2)
    f["tx_datetime"] = f["tx_datetime"] + pd.Timedelta(microseconds=250)
    f["channel"] = ["pos", None]
    f["lat"] = [48.85, np.nan]
    dec = msgspec.json.Decoder(Transaction)
    a, b = (dec.decode(m) for m in encode_transactions(f))
    assert a.tx_datetime.microsecond == 250 and a.channel == "pos" and a.lat == 48.85
    assert b.channel is None and b.lat is None


def test_labels_carry_the_delay() -> None:
    f = _frame()
    raw = encode_labels(f, f["tx_datetime"] + pd.Timedelta(days=7))
    labels = [msgspec.json.decode(m, type=Label) for m in raw]
    assert [lb.is_fraud for lb in labels] == f["is_fraud"].tolist()
    assert labels[3].fraud_scenario == 2 and labels[0].source == "simulator"
    assert labels[0].labeled_at - f["tx_datetime"][0].to_pydatetime() == timedelta(days=7)


def test_live_templates_encode_what_the_frame_encoder_does() -> None:
    f = _frame()
    f["channel"] = ["pos", None, "ecom", "pos", None, "atm"]
    f.loc[2, "customer_id"] = 'c "2"'
    when = pd.Timestamp("2026-11-25T10:11:12.345678Z")
    live = LiveTemplates(f)
    rows, ids = [4, 2, 0], ["run-1", "run-2", "run-3"]
    expected = f.iloc[rows].copy()
    expected["transaction_id"] = ids
    expected["tx_datetime"] = when
    assert live.transactions(rows, ids, when.to_pydatetime()) == encode_transactions(expected)
    labeled = pd.Series([when] * 3, index=expected.index)
    assert live.labels(rows, ids, when.to_pydatetime()) == encode_labels(expected, labeled)
    assert [live.keys[r] for r in rows] == [c.encode() for c in expected["customer_id"]]


def test_quoted_escapes_only_when_needed() -> None:
    assert quoted(pd.Series(["a", "b"])) == ['"a"', '"b"']
    assert quoted(pd.Series(['x"y'])) == ['"x\\"y"']


def test_schedule_interleaves_labels_in_event_time() -> None:
    f = _frame(6)  # every 12 h; labels 1 day later
    steps = replay_schedule(f, timedelta(days=1), chunk=1)
    seq = [("tx", int(s.tx_rows[0])) if len(s.tx_rows) else ("label", int(s.label_rows[0])) for s in steps]
    # label of row i is due at t_i + 24h == t_{i+2}: it comes just before transaction i+2
    assert seq[:6] == [("tx", 0), ("tx", 1), ("label", 0), ("tx", 2), ("label", 1), ("tx", 3)]
    assert sorted(i for k, i in seq if k == "label") == list(range(6))


def test_schedule_without_labels() -> None:
    steps = replay_schedule(_frame(5), None, chunk=2)
    assert [s.tx_rows.tolist() for s in steps] == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize(
    ("text", "seconds"), [("7d", 604800), ("60s", 60), ("10m", 600), ("250ms", 0.25), ("2", 2)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds
