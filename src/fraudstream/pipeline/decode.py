"""Splitting consumed ``input`` messages into a valid columnar batch and dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import Message

from fraudstream.contracts.batch import TxBatch
from fraudstream.contracts.messages import Transaction
from fraudstream.pipeline.validate import Invalid, validate_batch


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
    # The valid ones as columns, when validation built them (see ``validate_columns``).
    accepted: TxBatch | None = None

    def columns(self) -> TxBatch:
        if self.accepted is not None:
            return self.accepted
        return TxBatch.from_transactions(self.valid, self.times)

    @classmethod
    def of(cls, partition: int, entries: list[tuple[int, Message, tuple[Transaction, int] | Invalid]]
           ) -> PartitionBatch:
        """A batch of ``(offset, message, validated as)`` entries in offset order (as
        :meth:`add` of each, a column at a time when none is a dead letter)."""
        return cls.of_columns(partition, [e[0] for e in entries], [e[1] for e in entries],
                              [e[2] for e in entries])

    @classmethod
    def of_columns(
        cls, partition: int, offsets: list[int], messages: list[Message],
        results: list[tuple[Transaction, int] | Invalid], accepted: TxBatch | None = None,
    ) -> PartitionBatch:
        """:meth:`of` the entries given as columns; ``accepted``: the transactions as columns
        when every one is valid (as validation built them)."""
        pb = cls(partition)
        if any(type(r) is not tuple for r in results):
            for e in zip(offsets, messages, results, strict=True):
                pb.add(*e)
            return pb
        pb.valid = [r[0] for r in results]  # type: ignore[index]  # all tuples
        pb.times = [r[1] for r in results]  # type: ignore[index]
        pb.offsets = offsets
        pb.messages = messages
        pb.last_offset = offsets[-1] if offsets else -1
        pb.accepted = accepted
        return pb

    def add(self, offset: int, message: Message, res: tuple[Transaction, int] | Invalid) -> None:
        """The next message, validated as ``res``: a valid transaction or a dead letter."""
        self.last_offset = offset
        self.accepted = None  # built without this one
        if isinstance(res, Invalid):
            self.dead.append(DeadLetter(message, res.reason, res.detail))
        else:
            self.valid.append(res[0])
            self.times.append(res[1])
            self.offsets.append(offset)
            self.messages.append(message)


def split(messages: list[Message], now_ms: int) -> dict[int, PartitionBatch]:
    """Validate each message; group by partition. Kafka-level errors are not passed in."""
    out: dict[int, PartitionBatch] = {}
    pb: PartitionBatch | None = None
    results = validate_batch([m.value() for m in messages], [m.key() for m in messages], now_ms)
    for m, res in zip(messages, results, strict=True):
        p = cast(int, m.partition())  # an error-free message has both
        if pb is None or pb.partition != p:
            pb = out.get(p)
            if pb is None:
                pb = out[p] = PartitionBatch(p)
        pb.add(cast(int, m.offset()), m, res)
    return out
