"""Splitting consumed ``input`` messages into a valid columnar batch and dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import Message

from fraudstream.contracts.batch import TxBatch
from fraudstream.contracts.messages import Transaction
from fraudstream.pipeline.validate import Invalid, validate


@dataclass
class DeadLetter:
    message: Message
    reason: str
    detail: str


@dataclass
class PartitionBatch:
    """One partition's share of a consumed batch, in offset order."""

    partition: int
    valid: list[Transaction] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    last_offset: int = -1

    def columns(self) -> TxBatch:
        return TxBatch.from_transactions(self.valid)


def split(messages: list[Message], now_ms: int) -> dict[int, PartitionBatch]:
    """Validate each message; group by partition. Kafka-level errors are not passed in."""
    out: dict[int, PartitionBatch] = {}
    for m in messages:
        p = m.partition()
        pb = out.get(p)
        if pb is None:
            pb = out[p] = PartitionBatch(p)
        pb.last_offset = m.offset()
        res = validate(m.value(), m.key(), now_ms)
        if isinstance(res, Invalid):
            pb.dead.append(DeadLetter(m, res.reason, res.detail))
        else:
            pb.valid.append(res)
            pb.offsets.append(m.offset())
    return out
