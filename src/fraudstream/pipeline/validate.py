"""The ``input`` contract check: a transaction, or the reason it goes to the dead-letter queue.

msgspec decodes and type-checks in one pass (bad JSON, bad UTF-8, wrong types, missing
fields, non-positive or non-finite amounts, naive timestamps); the checks that need more
than a type (time range, id shape, key) follow. Deterministic for a given ``now``, so a
replay during state restore skips exactly what was dead-lettered the first time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

import msgspec

from fraudstream.contracts.batch import EPOCH_2000_MS
from fraudstream.contracts.messages import Transaction

MAX_MESSAGE_BYTES = 16 * 1024
MAX_ID_CHARS = 128
MAX_AMOUNT = 1e9
MAX_FUTURE_MS = 24 * 3600 * 1000
_BAD_ID = re.compile(r"[\x00-\x1f\x7f]")
_decoder = msgspec.json.Decoder(Transaction)


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str  # a short machine-readable code, e.g. "invalid_json"
    detail: str


def _id_problem(value: str | int, field: str) -> Invalid | None:
    if isinstance(value, int) and value < 0:
        return Invalid("invalid_id", f"{field} is negative")
    text = str(value)
    if not text or len(text) > MAX_ID_CHARS:
        return Invalid("invalid_id", f"{field} must have 1..{MAX_ID_CHARS} characters")
    if _BAD_ID.search(text) or text != text.strip():
        return Invalid("invalid_id", f"{field} has control characters or surrounding spaces")
    return None


def _plain_ids(tx: Transaction) -> bool:
    """Fast path for the common case: three short printable strings without edge spaces."""
    a, b, c = tx.transaction_id, tx.customer_id, tx.terminal_id
    if type(a) is not str or type(b) is not str or type(c) is not str:
        return False
    if not (0 < len(a) <= MAX_ID_CHARS and 0 < len(b) <= MAX_ID_CHARS and 0 < len(c) <= MAX_ID_CHARS):
        return False
    edges = a[0] + a[-1] + b[0] + b[-1] + c[0] + c[-1]
    return (a + b + c).isprintable() and not edges.isspace() and edges == edges.replace(" ", "")


def validate(value: bytes | None, key: bytes | None, now_ms: int) -> Transaction | Invalid:
    """Decode and check one ``input`` message."""
    if value is None:
        return Invalid("empty_message", "no value")
    if len(value) > MAX_MESSAGE_BYTES:
        return Invalid("oversized", f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        tx = _decoder.decode(value)
    except UnicodeDecodeError as exc:  # msgspec raises it for bad UTF-8 inside a string
        return Invalid("invalid_utf8", str(exc))
    except msgspec.ValidationError as exc:
        return Invalid("schema", str(exc))
    except msgspec.DecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return Invalid("invalid_utf8", str(exc))
        return Invalid("invalid_json", str(exc))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # never crash the worker
        return Invalid("undecodable", f"{type(exc).__name__}: {exc}")
    if not _plain_ids(tx):
        for field in ("transaction_id", "customer_id", "terminal_id"):
            problem = _id_problem(getattr(tx, field), field)
            if problem:
                return problem
    if not math.isfinite(tx.tx_amount) or tx.tx_amount > MAX_AMOUNT:
        return Invalid("invalid_amount", f"tx_amount {tx.tx_amount!r} out of range")
    if round(tx.tx_amount * 100) <= 0:
        return Invalid("invalid_amount", "tx_amount rounds to 0.00")
    when_ms = _epoch_ms(tx.tx_datetime)
    if when_ms < EPOCH_2000_MS:
        return Invalid("invalid_timestamp", "tx_datetime before 2000-01-01")
    if when_ms > now_ms + MAX_FUTURE_MS:
        return Invalid("invalid_timestamp", "tx_datetime more than a day in the future")
    for coord, bound in (("lat", 90.0), ("lon", 180.0)):
        v = getattr(tx, coord)
        if v is not None and not (math.isfinite(v) and -bound <= v <= bound):
            return Invalid("schema", f"{coord} out of range")
    if key is None or key.decode("utf-8", "replace") != str(tx.customer_id):
        return Invalid("key_mismatch", "message key must be the customer_id")
    return tx


def _epoch_ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)
