"""A partition's decisions as shipped to the publisher, and their ``output`` messages.

The decider packs each partition's decided batch (:func:`pack`: msgpack, ~0.2 us a
transaction) and the publisher (another process, see ``pipeline.publisher``) turns it into
``output`` messages (:func:`encode_outputs`, ~5 us a transaction: the JSON of 23 features and
the transaction's fields) inside the Kafka transaction. Encoding and producing were two
fifths of the detector's GIL time; in a process of their own they run on the second core
while the worker decides the next batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

import msgspec
import numpy as np

from fraudstream.contracts.messages import Decision, Transaction
from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.pipeline.core import Decisions
from fraudstream.pipeline.decode import PartitionBatch
from fraudstream.scoring.combine import DECISION_NAMES

_encoder = msgspec.json.Encoder()
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
    decision: bytes  # int8 codes (DECISION_NAMES)
    reasons: list[list[str]]
    feature_names: list[str]
    features: bytes  # float64 (n, len(feature_names)), C order, NaN and infinities as 0
    model_version: str | None
    rules_version: str | None
    processed_at: str


_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder(PartitionOutput).decode


def pack(pb: PartitionBatch, dec: Decisions, processed_at: str) -> bytes:
    """``pb``'s valid transactions and their decisions, as one msgpack blob."""
    names = list(dec.features)
    n = len(pb.valid)
    matrix = (np.column_stack([dec.features[k] for k in names]) if names and n
              else np.zeros((n, len(names))))
    matrix = np.nan_to_num(matrix.astype(np.float64, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    return _pack(PartitionOutput(
        partition=pb.partition,
        transactions=pb.valid,
        local_times=[None if t.tx_datetime.tzinfo is UTC else t.tx_datetime.isoformat() for t in pb.valid],
        times=np.asarray(pb.times, dtype=np.int64).tobytes(),
        score=np.ascontiguousarray(dec.score, dtype=np.float64).tobytes(),
        decision=np.ascontiguousarray(dec.decision, dtype=np.int8).tobytes(),
        reasons=dec.reasons,
        feature_names=names,
        features=np.ascontiguousarray(matrix).tobytes(),
        model_version=dec.model_version,
        rules_version=dec.rules_version,
        processed_at=processed_at,
    ))


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


def encode_outputs(out: PartitionOutput) -> list[tuple[bytes, bytes]]:
    """One ``output`` message (key, JSON value) per transaction of ``out``."""
    n = len(out.transactions)
    if n == 0:
        return []
    names = out.feature_names
    rows = np.frombuffer(out.features, dtype=np.float64).reshape(n, len(names)).tolist()
    features: list[Any]
    if names == FEATURE_NAMES:
        # A Struct with the features as fields encodes exactly as the dict, only faster.
        features = [_Features(*row) for row in rows]
    else:
        features = [dict(zip(names, row, strict=True)) for row in rows]
    # isoformat() of a whole-second UTC time, from the event times (vectorised).
    seconds = np.frombuffer(out.times, dtype=np.int64) // 1000
    utc_iso = np.datetime_as_string(seconds.astype("datetime64[s]")).tolist()
    scores = np.frombuffer(out.score, dtype=np.float64).tolist()
    decisions = [DECISION_NAMES[c] for c in np.frombuffer(out.decision, dtype=np.int8).tolist()]
    reasons, local = out.reasons, out.local_times
    model_version, rules_version, now_iso = out.model_version, out.rules_version, out.processed_at
    encode = _encoder.encode
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
        result.append((customer.encode(), encode(msg)))
    return result
