"""The ``input`` contract check: a transaction, or the reason it goes to the dead-letter queue.

msgspec decodes and type-checks in one pass (bad JSON, bad UTF-8, wrong types, missing
fields, non-positive or non-finite amounts, naive timestamps); the checks that need more
than a type (time range, id shape, key) follow. Deterministic for a given ``now``, so a
replay during state restore skips exactly what was dead-lettered the first time.
"""

from __future__ import annotations

import math
import operator
import re
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast

import msgspec
import msgspec.inspect
import msgspec.structs
import numpy as np

from fraudstream.contracts.batch import AMOUNT, CUSTOMER_ID, EPOCH_2000_MS, TERMINAL_ID, TX_ID, TxBatch
from fraudstream.contracts.messages import Transaction

MAX_MESSAGE_BYTES = 16 * 1024
MAX_ID_CHARS = 128
MAX_AMOUNT = 1e9
MAX_FUTURE_MS = 24 * 3600 * 1000
_BAD_ID = re.compile(r"[\x00-\x1f\x7f]")
_decoder = msgspec.json.Decoder(Transaction)


#: The lax type's ids: strings of a valid length (checked while decoding, in C) or integers.
_LaxId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)] | int
_ID_FIELDS = ("transaction_id", "customer_id", "terminal_id")
#: And its coordinates: absent, or in range (which excludes NaN and infinities).
_LAX_COORDINATES = {
    "lat": Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)] | None,
    "lon": Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)] | None,
}


def _lax_transaction() -> tuple[type[Transaction], re.Pattern[str]]:
    """A subclass of ``Transaction`` without the ``currency`` pattern, and with the ids' string
    lengths and the coordinates bounded as :func:`validate_timed` requires; and that pattern.

    msgspec checks a pattern with a Python ``re`` call, about half the cost of decoding a
    message; the common currency ("EUR") needs no regex. A message the lax type accepts with a
    currency the pattern finds (``re.search``, as msgspec does) is accepted by ``Transaction``
    with the same field values; anything else is decoded again with ``Transaction`` itself, so
    rejections (and their messages) are unchanged. The length bounds spare the batch check two
    passes over each id column, the coordinates' ranges its passes over them. A subclass (same
    fields, same order, same encoding): an accepted message is passed on as decoded, instead
    of being copied into a ``Transaction`` (~0.3 us a message).
    """
    info = msgspec.inspect.type_info(Transaction)
    assert isinstance(info, msgspec.inspect.StructType)
    assert info.tag is None and info.tag_field is None and not info.array_like
    hints = typing.get_type_hints(Transaction, include_extras=True)
    pattern = None
    fields: list[tuple[str, object] | tuple[str, object, object]] = []
    for f in info.fields:
        assert f.encode_name == f.name and f.default_factory is msgspec.NODEFAULT
        hint: object = hints[f.name]
        if f.name == "currency":
            assert isinstance(f.type, msgspec.inspect.StrType) and f.type.pattern is not None
            assert f.type.min_length is None and f.type.max_length is None
            pattern, hint = f.type.pattern, str
        elif f.name in _ID_FIELDS:
            hint = _LaxId
        elif f.name in _LAX_COORDINATES:
            hint = _LAX_COORDINATES[f.name]
        else:
            continue  # inherited as it is
        fields.append((f.name, hint) if f.required else (f.name, hint, f.default))
    assert pattern is not None
    lax = msgspec.defstruct("_LaxTransaction", fields, bases=(Transaction,), module=__name__,
                            gc=False)  # like Transaction (see contracts.messages)
    assert issubclass(lax, Transaction)
    return lax, re.compile(pattern)


_LaxTransaction, _CURRENCY = _lax_transaction()
_lax_decoder = msgspec.json.Decoder(_LaxTransaction)


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
    res = validate_timed(value, key, now_ms)
    return res if isinstance(res, Invalid) else res[0]


def validate_timed(
    value: bytes | None, key: bytes | None, now_ms: int
) -> tuple[Transaction, int] | Invalid:
    """:func:`validate`, also returning the accepted transaction's event time (epoch ms)."""
    if value is None:
        return Invalid("empty_message", "no value")
    if len(value) > MAX_MESSAGE_BYTES:
        return Invalid("oversized", f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        lax: Any = _lax_decoder.decode(value)
    except (msgspec.MsgspecError, ValueError, TypeError, OverflowError, RecursionError):
        lax = None  # rejected: the strict decoder below says why
    if lax is not None and (lax.currency == "EUR" or _CURRENCY.search(lax.currency) is not None):
        tx = lax
    else:
        res = _decode_strict(value)
        if isinstance(res, Invalid):
            return res
        tx = res
    a, b, c = tx.transaction_id, tx.customer_id, tx.terminal_id
    digits = (
        type(a) is str and type(b) is str and type(c) is str and (a + b + c).isdigit()
        and 0 < len(a) <= MAX_ID_CHARS and 0 < len(b) <= MAX_ID_CHARS and 0 < len(c) <= MAX_ID_CHARS
    )  # decimal digits only: a valid id (see _id_problem)
    if not digits and not _plain_ids(tx):
        for field in _ID_FIELDS:
            problem = _id_problem(getattr(tx, field), field)
            if problem:
                return problem
    amount = tx.tx_amount
    if not math.isfinite(amount) or amount > MAX_AMOUNT:
        return Invalid("invalid_amount", f"tx_amount {amount!r} out of range")
    if round(amount * 100) <= 0:
        return Invalid("invalid_amount", "tx_amount rounds to 0.00")
    when_ms = round(tx.tx_datetime.timestamp() * 1000)  # = _epoch_ms(tx.tx_datetime)
    if when_ms < EPOCH_2000_MS:
        return Invalid("invalid_timestamp", "tx_datetime before 2000-01-01")
    if when_ms > now_ms + MAX_FUTURE_MS:
        return Invalid("invalid_timestamp", "tx_datetime more than a day in the future")
    if tx.lat is not None or tx.lon is not None:
        for coord, bound in (("lat", 90.0), ("lon", 180.0)):
            v = getattr(tx, coord)
            if v is not None and not (math.isfinite(v) and -bound <= v <= bound):
                return Invalid("schema", f"{coord} out of range")
    if key is None or key.decode("utf-8", "replace") != str(tx.customer_id):
        return Invalid("key_mismatch", "message key must be the customer_id")
    return tx, when_ms


#: Below this many messages, :func:`validate_batch` checks them one at a time.
BATCH_MIN = 16
_DECODE_ERRORS = (msgspec.MsgspecError, ValueError, TypeError, OverflowError, RecursionError)
_lax_decode: Any = _lax_decoder.decode  # (bytes | None) -> lax; None raises TypeError
_CURRENCY_OF = operator.attrgetter("currency")
_DATETIME = operator.attrgetter("tx_datetime")


def validate_batch(
    values: list[bytes | None], keys: list[bytes | None], now_ms: int
) -> list[tuple[Transaction, int] | Invalid]:
    """:func:`validate_timed` of each message, a whole list at a time.

    Why: this runs for every transaction on the thread that decides them; checked as columns
    (each check a C-level pass over the list, the common case answered for all at once) it
    costs ~1.3 us a message against ~2.3 one at a time (10,000 valid messages). Only messages
    that pass every check are accepted here (the ``validate_timed`` fast path: decimal-digit
    ids); any other goes through :func:`validate_timed` itself, so results and rejection
    reasons are the same.
    """
    return validate_columns(values, keys, now_ms)[0]


def validate_columns(
    values: list[bytes | None], keys: list[bytes | None], now_ms: int
) -> tuple[list[tuple[Transaction, int] | Invalid], TxBatch | None]:
    """:func:`validate_batch`, and the accepted transactions as columns when every message is
    accepted (the common case; None otherwise): the checks build them anyway, and the
    terminal state and the batch the worker decides need exactly these."""
    out: list[Any] = [None] * len(values)
    if len(values) >= BATCH_MIN:
        try:
            lax = list(map(_lax_decode, values))
            idx = range(len(values))
        except _DECODE_ERRORS:  # some do not decode: they are left to validate_timed
            decoded = [(i, x) for i, x in enumerate(map(_decode_or_none, values)) if x is not None]
            idx, lax = [i for i, _ in decoded], [x for _, x in decoded]  # type: ignore[assignment]
        if lax:
            whole = isinstance(idx, range)  # every message decoded: no subset to gather
            times, accepted = _accepted(lax, keys if whole else [keys[i] for i in idx],
                                        values if whole else [values[i] for i in idx], now_ms)
            if whole and accepted is not None:
                return list(zip(lax, cast(list[int], times), strict=True)), accepted
            for j, ms in enumerate(times):
                if ms is not None:
                    out[idx[j]] = (lax[j], ms)
    for i, res in enumerate(out):
        if res is None:
            out[i] = validate_timed(values[i], keys[i], now_ms)
    return out, None


def _decode_or_none(value: bytes | None) -> Any:
    try:
        return _lax_decode(value)  # type: ignore[arg-type]  # None raises TypeError
    except _DECODE_ERRORS:
        return None


def _digit_ids(col: list[Any]) -> bool:
    """Whether every id of lax-decoded transactions (strings of 1..MAX_ID_CHARS characters, or
    integers) is a string of decimal digits (a valid id)."""
    try:
        return "".join(col).isdigit()
    except TypeError:  # an integer
        return False


def _digit_id(x: Any) -> bool:
    """:func:`_digit_ids` of one lax-decoded id (its length is already bounded)."""
    return type(x) is str and x.isdigit()


def _accepted(
    lax: list[Any], keys: list[bytes | None], values: list[Any], now_ms: int
) -> tuple[list[int | None], TxBatch | None]:
    """The event time (epoch ms) of each decoded transaction that passes every check of
    :func:`validate_timed` with decimal-digit ids (the lax decoder has bounded the ids' lengths
    and the coordinates), None for any other; and, when all pass, their columns. Each check
    looks at the whole column first, and element by element only when that fails."""
    n = len(lax)
    bad = np.zeros(n, dtype=bool)
    if max(map(len, values)) > MAX_MESSAGE_BYTES:
        bad |= np.fromiter(map(len, values), np.int64, n) > MAX_MESSAGE_BYTES
    currency = list(map(_CURRENCY_OF, lax))
    if currency.count("EUR") != n:
        bad |= np.fromiter((c != "EUR" and _CURRENCY.search(c) is None for c in currency), bool, n)
    ids = []
    for get in (TX_ID, CUSTOMER_ID, TERMINAL_ID):
        ids.append(col := list(map(get, lax)))
        if not _digit_ids(col):
            bad |= ~np.fromiter(map(_digit_id, col), bool, n)
    tx_ids, customers, terminals = ids
    amount = np.fromiter(map(AMOUNT, lax), np.float64, n)
    with np.errstate(invalid="ignore", over="ignore"):
        cents = np.round(amount * 100)
        bad |= ~(np.isfinite(amount) & (amount <= MAX_AMOUNT) & (cents > 0))
    stamps = np.fromiter(map(datetime.timestamp, map(_DATETIME, lax)), np.float64, n)
    when_ms = np.round(stamps * 1000).astype(np.int64)  # = round(timestamp() * 1000): ties to even
    bad |= (when_ms < EPOCH_2000_MS) | (when_ms > now_ms + MAX_FUTURE_MS)
    # Non-digit customers are rejected above: "" here keeps encoding from raising.
    encoded = [c.encode() if _digit_id(c) else b"" for c in customers] if bad.any() else [
        c.encode() for c in customers]
    if encoded != keys:
        bad |= ~np.fromiter(map(operator.eq, keys, encoded), bool, n)
    if not bad.any():
        columns = TxBatch(transaction_id=tx_ids, customer_id=customers, terminal_id=terminals,
                          time_ms=when_ms, tx_amount=amount, amount_cents=cents.astype(np.int64),
                          records=lax)  # as TxBatch.from_transactions builds them
        return when_ms.tolist(), columns
    return [None if b else ms for ms, b in zip(when_ms.tolist(), bad.tolist(), strict=True)], None


def _decode_strict(value: bytes) -> Transaction | Invalid:
    try:
        return _decoder.decode(value)
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


def _epoch_ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)
