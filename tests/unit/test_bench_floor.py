"""Kafka alone (``bench.floor``) publishes messages the size and shape of a decision."""

from __future__ import annotations

import json

from fraudstream.bench.floor import decision_sized


def test_a_decision_sized_message_keeps_the_transaction_and_adds_thirty_features() -> None:
    tx = {"transaction_id": "7", "tx_datetime": "2018-04-01T00:00:31+00:00", "tx_amount": 57.16}
    out = json.loads(decision_sized(json.dumps(tx).encode() + b"\n"))
    assert {k: out[k] for k in tx} == tx  # the bench's latency reader reads tx_datetime from it
    assert len(out["features"]) == 30
    assert out["decision"] == "approve"
    assert len(json.dumps(out)) > 1000  # about a real decision's size (~1.5 kB)
