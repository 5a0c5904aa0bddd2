"""The JSON Schemas kept in the repo are the ones the msgspec contracts generate."""

from __future__ import annotations

import json
from importlib import resources

import msgspec

from fraudstream.contracts.messages import Decision, Label, Transaction, json_schemas


def test_schema_files_are_up_to_date() -> None:
    folder = resources.files("fraudstream.contracts").joinpath("schemas")
    for name, schema in json_schemas().items():
        stored = json.loads(folder.joinpath(f"{name}.schema.json").read_text())
        assert stored == json.loads(json.dumps(schema)), f"{name}: regenerate the schema file"


def test_decision_round_trip() -> None:
    d = Decision(
        transaction_id="1", tx_datetime="2018-04-01T00:00:31+00:00", customer_id="596",
        terminal_id="3156", tx_amount=57.16, currency="EUR", score=0.2, decision="approve",
        reasons=[], features={"TX_AMOUNT": 57.16}, model_version=None, rules_version="1",
        processed_at="2026-11-25T00:00:00+00:00",
    )
    assert msgspec.json.decode(msgspec.json.encode(d), type=Decision) == d


def test_label_contract() -> None:
    raw = (b'{"transaction_id": 7, "is_fraud": true, "labeled_at": "2018-04-08T00:00:00Z",'
           b' "source": "analyst"}')
    lb = msgspec.json.decode(raw, type=Label)
    assert lb.is_fraud and lb.source == "analyst" and str(lb.transaction_id) == "7"
    assert Transaction.__struct_fields__[:5] == (
        "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount")
