"""A partition's decisions as shipped to the publisher, and their ``output`` messages.

The publisher process imports this module: it keeps to msgspec, numpy and the feature names
(no pydantic, psycopg or the rules, which would cost the process ~20 MB for nothing).

The decider packs each partition's decided batch (``pipeline.pack``: msgpack, ~0.2 us a
transaction) and the publisher (another process, see ``pipeline.publisher``) turns it into
``output`` messages (:func:`encode_outputs`, ~5 us a transaction: the JSON of 23 features and
the transaction's fields) inside the Kafka transaction. Encoding and producing were two
fifths of the detector's GIL time; in a process of their own they run on the second core
while the worker decides the next batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import numpy as np

from fraudstream.contracts.messages import Decision, Transaction
from fraudstream.features.definitions import FEATURE_NAMES, INTEGER_FEATURES

_encoder = msgspec.json.Encoder()
#: Whole floats below this are exactly their int.
_EXACT_INT = 2.0**53
#: ``Decision.features`` as a Struct: encodes as the same JSON object as the dict.
_Features = msgspec.defstruct("DecisionFeatures", [(name, float) for name in FEATURE_NAMES], gc=False)


class PartitionOutput(msgspec.Struct, array_like=True, gc=False):
    """One partition's decided transactions, for :func:`encode_outputs` (msgpack on the wire).

    msgpack keeps a datetime's instant but not its UTC offset, so ``local_times`` carries the
    ISO text of each ``tx_datetime`` that is not in UTC (None where it is)."""

    partition: int
    transactions: list[Transaction]
    local_times: list[str | None]
    times: bytes  # int64 event times (epoch ms)
    score: bytes  # float64
    decision: bytes  # int8 codes into decision_names
    decision_names: list[str]
    reasons: list[list[str]]
    feature_names: list[str]
    features: bytes  # float64 (n, len(feature_names)), C order, NaN and infinities as 0
    model_version: str | None
    rules_version: str | None
    processed_at: str


_unpack = msgspec.msgpack.Decoder(PartitionOutput).decode


def unpack(blob: bytes) -> PartitionOutput:
    return _unpack(blob)


def split_rows(out: PartitionOutput, size: int) -> Iterator[PartitionOutput]:
    """``out`` in pieces of at most ``size`` transactions (to encode a little at a time)."""
    n, width = len(out.transactions), 8 * len(out.feature_names)
    for i in range(0, n, size):
        j = min(n, i + size)
        yield msgspec.structs.replace(
            out, transactions=out.transactions[i:j], local_times=out.local_times[i:j],
            times=out.times[8 * i:8 * j], score=out.score[8 * i:8 * j], decision=out.decision[i:j],
            reasons=out.reasons[i:j], features=out.features[width * i:width * j],
        )


def _columns(matrix: np.ndarray, names: list[str]) -> list[list[Any]]:
    """The feature matrix's columns as lists of Python numbers, ints for the counts and flags
    whose values are all whole: they then encode as ``3``, not ``3.0`` (the same JSON number,
    written ~5x faster by msgspec, whose float formatting is slowest on whole values)."""
    columns = matrix.T.tolist()
    at = [j for j, name in enumerate(names) if name in INTEGER_FEATURES]
    if at and len(matrix):
        counts = matrix[:, at]
        whole = (counts == np.trunc(counts)).all(axis=0) & (np.abs(counts).max(axis=0) < _EXACT_INT)
        at = [j for j, ok in zip(at, whole.tolist(), strict=True) if ok]
        for j, ints in zip(at, counts[:, whole].astype(np.int64).T.tolist(), strict=True):
            columns[j] = ints
    return columns


def encode_outputs(out: PartitionOutput) -> list[tuple[bytes, bytes]]:
    """One ``output`` message (key, JSON value) per transaction of ``out``."""
    n = len(out.transactions)
    if n == 0:
        return []
    names = out.feature_names
    columns = _columns(np.frombuffer(out.features, dtype=np.float64).reshape(n, len(names)), names)
    features: list[Any]
    if names == FEATURE_NAMES:
        # A Struct with the features as fields encodes exactly as the dict, only faster.
        features = list(map(_Features, *columns))
    else:
        rows = zip(*columns, strict=True) if columns else [()] * n
        features = [dict(zip(names, row, strict=True)) for row in rows]
    # isoformat() of a whole-second UTC time, from the event times (vectorised).
    seconds = np.frombuffer(out.times, dtype=np.int64) // 1000
    utc_iso = np.datetime_as_string(seconds.astype("datetime64[s]")).tolist()
    scores = np.frombuffer(out.score, dtype=np.float64).tolist()
    names_of = out.decision_names
    decisions = [names_of[c] for c in np.frombuffer(out.decision, dtype=np.int8).tolist()]
    reasons, local = out.reasons, out.local_times
    model_version, rules_version, now_iso = out.model_version, out.rules_version, out.processed_at
    # Into one reused buffer, then copied out: the encoder's own output grows from a small
    # buffer by reallocations for each ~1.5 kB message (0.3-0.6 us of ~2.5 a message here).
    buf = bytearray(4096)
    encode_into = _encoder.encode_into
    result = []
    for i, tx in enumerate(out.transactions):
        when_iso = local[i]
        if when_iso is None:
            when = tx.tx_datetime  # UTC: msgpack gives it back as it was
            when_iso = utc_iso[i] + "+00:00" if not when.microsecond else when.isoformat()
        customer = str(tx.customer_id)
        # Positional: the field order of Decision.
        msg = Decision(
            str(tx.transaction_id), when_iso, customer, str(tx.terminal_id), tx.tx_amount,
            tx.currency, scores[i], decisions[i], reasons[i], features[i], model_version,
            rules_version, now_iso, tx.channel, tx.merchant_category, tx.country, tx.lat, tx.lon,
        )
        encode_into(msg, buf)
        result.append((customer.encode(), bytes(buf)))
    return result
