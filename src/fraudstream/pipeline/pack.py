"""The decider's side of ``pipeline.publish``: a partition's decided batch as one msgpack blob."""

from __future__ import annotations

from datetime import UTC

import msgspec
import numpy as np

from fraudstream.pipeline.core import Decisions
from fraudstream.pipeline.decode import PartitionBatch
from fraudstream.pipeline.publish import PartitionOutput
from fraudstream.scoring.combine import DECISION_NAMES

_pack = msgspec.msgpack.Encoder().encode


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
        decision_names=list(DECISION_NAMES),
        reasons=dec.reasons,
        feature_names=names,
        features=np.ascontiguousarray(matrix).tobytes(),
        model_version=dec.model_version,
        rules_version=dec.rules_version,
        processed_at=processed_at,
    ))
