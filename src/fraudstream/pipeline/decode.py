"""Splitting consumed ``input`` messages into a valid columnar batch and dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import Message

from fraudstream.contracts.batch import TxBatch
from fraudstream.contracts.messages import Transaction
from fraudstream.pipeline.validate import Invalid, validate_timed


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
    times: list[int] = field(default_factory=list)  # event time (epoch ms) of each valid one
    # The valid ones' messages, until duplicates are sorted out (their dead letters carry them).
    messages: list[Message] = field(default_factory=list)

    def columns(self) -> TxBatch:
        return TxBatch.from_transactions(self.valid, self.times)


def split(messages: list[Message], now_ms: int) -> dict[int, PartitionBatch]:
    """Validate each message; group by partition. Kafka-level errors are not passed in."""
    out: dict[int, PartitionBatch] = {}
    pb: PartitionBatch | None = None
    for m in messages:
        p = cast(int, m.partition())  # an error-free message has both
        if pb is None or pb.partition != p:
            pb = out.get(p)
            if pb is None:
                pb = out[p] = PartitionBatch(p)
        offset = cast(int, m.offset())
        pb.last_offset = offset
        res = validate_timed(m.value(), m.key(), now_ms)
        if isinstance(res, Invalid):
            pb.dead.append(DeadLetter(m, res.reason, res.detail))
        else:
            pb.valid.append(res[0])
            pb.times.append(res[1])
            pb.offsets.append(offset)
            pb.messages.append(m)
    return out
