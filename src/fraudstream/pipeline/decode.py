"""Splitting consumed ``input`` messages into a valid columnar batch and dead letters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import Message

from fraudstream.contracts.batch import TxBatch
from fraudstream.contracts.messages import Transaction
from fraudstream.pipeline.validate import MAX_FUTURE_MS, Invalid, validate_timed

#: ``(partition, offset) -> (transaction, event time ms) | None``: a message already validated
#: (by the global reader) and accepted, or None when unknown (see :func:`split`).
Decoded = Callable[[int, int], tuple[Transaction, int] | None]


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

    def columns(self) -> TxBatch:
        return TxBatch.from_transactions(self.valid, self.times)


def split(
    messages: list[Message], now_ms: int, decoded: Decoded | None = None
) -> dict[int, PartitionBatch]:
    """Validate each message; group by partition. Kafka-level errors are not passed in.

    ``decoded`` may supply messages already validated and accepted by another reader of the
    same log (same bytes at the same offset) at an earlier ``now``: such a message is taken as
    is when its time also passes the future bound at ``now_ms`` (the only check that depends on
    the clock), so the outcome is exactly that of validating it here.
    """
    out: dict[int, PartitionBatch] = {}
    limit = now_ms + MAX_FUTURE_MS
    pb: PartitionBatch | None = None
    for m in messages:
        p = cast(int, m.partition())  # an error-free message has both
        if pb is None or pb.partition != p:
            pb = out.get(p)
            if pb is None:
                pb = out[p] = PartitionBatch(p)
        offset = cast(int, m.offset())
        pb.last_offset = offset
        known = decoded(p, offset) if decoded is not None else None
        res = known if known is not None and known[1] <= limit else validate_timed(m.value(), m.key(), now_ms)
        if isinstance(res, Invalid):
            pb.dead.append(DeadLetter(m, res.reason, res.detail))
        else:
            pb.valid.append(res[0])
            pb.times.append(res[1])
            pb.offsets.append(offset)
    return out
