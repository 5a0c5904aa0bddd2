"""A corpus of bad (and awkward but valid) ``input`` messages, shared by unit and integration tests.

Each case: (name, value bytes or None, key bytes or None, expected DLQ reason or None if valid).
"""

from __future__ import annotations

import json

GOOD = {
    "transaction_id": "x-1", "tx_datetime": "2018-04-10T12:00:00+00:00", "customer_id": "90001",
    "terminal_id": "7", "tx_amount": 12.5, "currency": "EUR",
}


def _tx(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not _DROP}).encode()


_DROP = object()


def cases(prefix: str = "bad") -> list[tuple[str, bytes | None, bytes | None, str | None]]:
    """≥ 30 kinds of invalid messages and a few valid-but-awkward ones; ids carry ``prefix``."""
    def tid(name: str) -> str:
        return f"{prefix}-{name}"

    key = GOOD["customer_id"].encode()
    out: list[tuple[str, bytes | None, bytes | None, str | None]] = [
        ("truncated_json", b'{"transaction_id": "a", "tx_amount": ', key, "invalid_json"),
        ("not_json", b"hello world", key, "invalid_json"),
        ("non_utf8", b'\xff\xfe{"transaction_id": "a"}', key, "invalid_utf8"),
        ("latin1_in_string", _tx(transaction_id=tid("latin1")).replace(b"\"7\"", b"\"\xe97\""), key,
         "invalid_utf8"),
        ("json_array", b"[1, 2, 3]", key, "schema"),
        ("json_string", b'"just a string"', key, "schema"),
        ("json_null", b"null", key, "schema"),
        ("empty_value", b"", key, "invalid_json"),
        ("null_value", None, key, "empty_message"),
        ("missing_id", _tx(transaction_id=_DROP), key, "schema"),
        ("missing_datetime", _tx(transaction_id=tid("nodt"), tx_datetime=_DROP), key, "schema"),
        ("missing_customer", _tx(transaction_id=tid("nocust"), customer_id=_DROP), key, "schema"),
        ("missing_terminal", _tx(transaction_id=tid("noterm"), terminal_id=_DROP), key, "schema"),
        ("missing_amount", _tx(transaction_id=tid("noamt"), tx_amount=_DROP), key, "schema"),
        ("amount_as_string", _tx(transaction_id=tid("amtstr"), tx_amount="12.5"), key, "schema"),
        ("amount_bool", _tx(transaction_id=tid("amtbool"), tx_amount=True), key, "schema"),
        ("amount_zero", _tx(transaction_id=tid("zero"), tx_amount=0), key, "schema"),
        ("amount_negative", _tx(transaction_id=tid("neg"), tx_amount=-5.0), key, "schema"),
        ("amount_sub_cent", _tx(transaction_id=tid("subcent"), tx_amount=0.001), key, "invalid_amount"),
        ("amount_nan", _tx(transaction_id=tid("nan")).replace(b"12.5", b"NaN"), key, "invalid_json"),
        ("amount_infinity", _tx(transaction_id=tid("inf")).replace(b"12.5", b"1e999"), key, "schema"),
        ("amount_absurd", _tx(transaction_id=tid("absurd"), tx_amount=5e12), key, "invalid_amount"),
        ("naive_datetime", _tx(transaction_id=tid("naive"), tx_datetime="2018-04-10T12:00:00"), key,
         "schema"),
        ("garbled_datetime", _tx(transaction_id=tid("garbled"), tx_datetime="yesterday noon"), key, "schema"),
        ("datetime_as_number", _tx(transaction_id=tid("dtnum"), tx_datetime=1523361600), key, "schema"),
        ("far_future", _tx(transaction_id=tid("future"), tx_datetime="2999-01-01T00:00:00+00:00"), key,
         "invalid_timestamp"),
        ("before_2000", _tx(transaction_id=tid("old"), tx_datetime="1970-01-01T00:00:00+00:00"), key,
         "invalid_timestamp"),
        ("oversized", _tx(transaction_id=tid("big"), channel="x" * 20_000), key, "oversized"),
        ("control_char_in_id", _tx(transaction_id=tid("ctl") + "\u0000"), key, "invalid_id"),
        ("newline_in_customer", _tx(transaction_id=tid("nl"), customer_id="90001\n"), b"90001\n",
         "invalid_id"),
        ("empty_id", _tx(transaction_id=""), key, "invalid_id"),
        ("id_is_object", _tx(transaction_id={"a": 1}), key, "schema"),
        ("id_is_float", _tx(transaction_id=tid("f"), customer_id=1.5), key, "schema"),
        ("negative_int_id", _tx(transaction_id=-5), key, "invalid_id"),
        ("huge_id", _tx(transaction_id="i" * 500), key, "invalid_id"),
        ("currency_lowercase", _tx(transaction_id=tid("cur"), currency="eur"), key, "schema"),
        ("currency_long", _tx(transaction_id=tid("cur2"), currency="EURO"), key, "schema"),
        ("lat_out_of_range", _tx(transaction_id=tid("lat"), lat=500.0), key, "schema"),
        ("nested_channel", _tx(transaction_id=tid("nest"), channel={"a": [[[1]]]}), key, "schema"),
        ("null_key", _tx(transaction_id=tid("nullkey")), None, "key_mismatch"),
        ("wrong_key", _tx(transaction_id=tid("wrongkey")), b"12345", "key_mismatch"),
        # valid, awkward: must be decided normally (and stored safely if suspicious)
        ("sql_injection_ids", _tx(transaction_id="1'; DROP TABLE fraudulent_transactions;--",
                                  customer_id="90002' OR '1'='1", terminal_id="t'--", tx_amount=99999.0),
         b"90002' OR '1'='1", None),
        ("unicode_fields", _tx(transaction_id=tid("unicode-\u00e9\u4e2d"), channel="caf\u00e9 \u2615",
                               merchant_category="\u00c7a\u00e7a"), key, None),
        ("integer_ids", _tx(transaction_id=987654321, customer_id=90003, terminal_id=42), b"90003", None),
        ("unknown_extra_field", _tx(transaction_id=tid("extra"), is_fraud=True, note="ignored"), key, None),
    ]
    return out


def duplicate_pair(prefix: str = "dup") -> list[tuple[str, bytes, bytes, str | None]]:
    """The same transaction twice: the first is decided, the second dead-lettered."""
    msg = _tx(transaction_id=f"{prefix}-same", customer_id="90004")
    return [("dup_first", msg, b"90004", None), ("dup_second", msg, b"90004", "duplicate_transaction_id")]
