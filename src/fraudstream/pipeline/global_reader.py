"""The global table of terminal activity: every worker reads *all* of ``input`` and ``training``.

``input`` is keyed by customer, so a terminal's transactions are spread over every partition,
and its labels arrive on ``training``. Each worker therefore keeps its own copy of the
terminal state (:class:`~fraudstream.features.terminal.TerminalState`), fed by this reader
from all partitions (a consumer per partition with ``assign``, no group, nothing committed),
instead of a repartition topic and a stream-stream join.

Correctness across workers comes from event-time alignment: before a worker computes features
for transactions up to time ``t``, :meth:`GlobalReader.advance_to` reads until every partition
of both topics has passed ``t`` (its last message is later than ``t``) or is at its end. In live
traffic "at its end" is only as good as the producers: a transaction of the same moment may
reach another partition some milliseconds after the worker's own (producers send each
partition's batch on its own), so an end counts only once ``arrival_grace`` of wall time has
passed since the worker's batch arrived (a backlog never waits: its partitions are past ``t``).
A transaction later than that is missing from one 10-minute terminal count. Terminal features
only look at transactions strictly before ``t`` (10-minute count) or at least 7 days old
(handbook windows), and at labels stamped no later than ``t``, so every worker computes the same
values whatever else it has read (the reader may run ahead of the slowest partition; the
terminal state only forgets events older than the horizon behind the earliest time still to be
decided, see ``Worker``). A replayed or restarted worker starts this reader ``horizon`` before
the oldest committed position, which rebuilds the state from the log itself.

The worker's own partitions are read here too, once: the reader keeps what it read of the
partitions the worker owns, from the worker's position on (:meth:`GlobalReader.share`), and the
worker takes its batches from there (:meth:`GlobalReader.take`) instead of fetching and
validating the same messages with a consumer of its own. The worker's group consumer only
holds the assignment (its partitions paused); where the worker resumes (an assignment, an
aborted batch) the reader's client of that partition is moved back there
(:meth:`GlobalReader.rewind`): transactions read twice are observed once (by id).
"""

from __future__ import annotations

import operator
import time
import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any, cast

import msgspec
import numpy as np
import structlog
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition

from fraudstream.contracts.batch import TERMINAL_ID, TX_ID, TxBatch, id_strings
from fraudstream.contracts.messages import Label, Transaction
from fraudstream.features.terminal import TerminalState
from fraudstream.pipeline.consume import consume_ready
from fraudstream.pipeline.decode import PartitionBatch
from fraudstream.pipeline.validate import Invalid, validate_columns
from fraudstream.settings import Settings

log = structlog.get_logger(__name__)

NEG_INF = -(2**62)
#: What a batch waits for more messages, between looks at the worker's partitions (``take``):
#: the reader's clients are polled in turn, so this bounds the latency a message can gain here.
TAKE_POLL_S = 0.01
#: Messages a client fetches ahead (librdkafka's ``queued.min.messages``, default 100,000).
#: A partition is read only while it is behind the time being decided (or, for the worker's
#: own, while its next batch is short), so this bounds how far it runs ahead: labels read far
#: ahead of their transactions wait in the terminal state's bounded room (1.7 M labels in 30 s
#: once, a near stall). Each partition is read in bursts, and with 10,000 a burst drained the
#: queue faster than fetches refilled it (~4 s of a 1M-transaction replay spent waiting).
#: Memory decides the figure: a prefetched message costs ~0.6 kB in librdkafka, and with 1.2M
#: customers of state the detector peaked at 1,018 MiB with 25,000 against 1,120 MiB with
#: 50,000 (session 15), and the worker at 893 MiB with 15,000 against 923 with 25,000
#: (session 17, 54,415 tx/s against 45,959-57,858); 8 MB fetches per partition, tried as
#: well, cost ~700 MB more: a fetch buffer stays allocated while any message of it lives.
READER_PREFETCH_MESSAGES = 15_000
_label_decoder = msgspec.json.Decoder(Label)
_label_decode: Any = _label_decoder.decode  # for map(): None raises TypeError
_LABELED_AT = operator.attrgetter("labeled_at")
_IS_FRAUD = operator.attrgetter("is_fraud")
#: A message read from one of the worker's partitions, validated as.
_Result = tuple[Transaction, int] | Invalid


@dataclass(slots=True)
class _Chunk:
    """Consecutive messages read of one of the worker's partitions: offsets, messages, what
    validation made of them, and their columns when all were accepted (kept with them so that
    the batch the worker takes need not build them again)."""

    offsets: list[int]
    messages: list[Message]
    results: list[_Result]
    accepted: TxBatch | None

    def __len__(self) -> int:
        return len(self.offsets)

    def window(self, start: int, stop: int | None = None) -> _Chunk:
        """The messages ``start:stop``."""
        stop = len(self.offsets) if stop is None else stop
        return _Chunk(self.offsets[start:stop], self.messages[start:stop], self.results[start:stop],
                      self.accepted.window(start, stop) if self.accepted is not None else None)

    def since(self, offset: int) -> _Chunk:
        """The messages from ``offset`` on."""
        return self if self.offsets[0] >= offset else self.window(bisect_left(self.offsets, offset))


def decode_label(value: bytes | None) -> Label | None:
    """A ``training`` label, or None for anything unreadable (it must never stop a worker:
    every worker reads every label)."""
    if value is None:
        return None
    try:
        return _label_decoder.decode(value)
    except (msgspec.MsgspecError, UnicodeDecodeError, ValueError, TypeError):
        return None


class GlobalReader:
    def __init__(
        self,
        settings: Settings,
        terminal: TerminalState,
        now_ms: Callable[[], int],
        wall_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.terminal = terminal
        self.now_ms = now_ms
        self.wall_s = wall_s  # for arrival grace deadlines (``advance_to``)
        self.topics = (settings.topic_input, settings.topic_training)
        self._meta = self._client(settings)  # metadata and offset lookups; assigned nothing
        # One client per partition (see ``start``): a client's partitions share one queue, and
        # librdkafka stops fetching all of them while that queue holds ``queued.min.messages``.
        # With one client for everything, the prefetched ``input`` kept a ``training``
        # partition behind ``t`` from being fetched; with one per topic, the fastest partition
        # of a topic starved the others (one ran 50 days ahead while the reader waited ~1.5 s
        # a batch for another). Apart, each partition is read only as far as a batch needs.
        self.clients: dict[tuple[str, int], Consumer] = {}
        self.last: dict[tuple[str, int], int] = {}
        self.eof: dict[tuple[str, int], bool] = {}
        self.position: dict[tuple[str, int], int] = {}  # next offset to read
        self.observed = 0
        self.labels = 0
        # The worker's partitions: what was read of them and not taken yet, in offset order
        # (see ``share``), and the next offset the worker takes (its position).
        self._shared: dict[int, deque[_Chunk]] = {}
        self._share_from: dict[int, int] = {}
        self._start: dict[tuple[str, int], int] = {}  # where ``start`` put each client

    @staticmethod
    def _client(settings: Settings) -> Consumer:
        return Consumer({
            **settings.kafka_client_config(),
            "group.id": f"fraudstream-global-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            # How long an empty fetch waits at the broker: the end-of-partition events that
            # let a batch go come with empty fetches. 10 ms cost the brokers ~100 fetches a
            # second each for nothing; 500 (the default) held some batches half a second.
            "fetch.wait.max.ms": 50,
            "queued.min.messages": READER_PREFETCH_MESSAGES,
            "log_level": 3,
        })

    # ---- positioning -----------------------------------------------------------------
    def partitions(self, topic: str) -> list[int]:
        md = self._meta.list_topics(topic, timeout=30)
        return sorted(md.topics[topic].partitions)

    def start(self, from_ms: int | None) -> None:
        """Assign every partition, starting at event time ``from_ms`` (None: the beginning)."""
        tps = [TopicPartition(t, p) for t in self.topics for p in self.partitions(t)]
        if from_ms is None:
            for tp in tps:
                tp.offset = OFFSET_BEGINNING
        else:
            query = [TopicPartition(tp.topic, tp.partition, max(0, from_ms)) for tp in tps]
            found = self._meta.offsets_for_times(query, timeout=30)
            for tp, f in zip(tps, found, strict=True):
                tp.offset = f.offset if f.offset >= 0 else OFFSET_END
        for tp in tps:
            key = (tp.topic, tp.partition)
            self._start[key] = {OFFSET_BEGINNING: 0, OFFSET_END: -NEG_INF}.get(tp.offset, tp.offset)
            self.last[key] = NEG_INF
            self.eof[key] = False
            self.clients[key] = self._client(self.settings)
            self.clients[key].assign([tp])
        log.info("global_reader.start", from_ms=from_ms, partitions=len(tps))

    # ---- reading ---------------------------------------------------------------------
    def ready(self, t_ms: int, owned: dict[int, int] | None = None, settled: bool = True) -> bool:
        """Whether every partition is past ``t_ms`` or (once ``settled``) at its end; a
        partition of the worker's batch is not at its end before the reader has read the batch
        (``owned``: partition -> last offset in the batch), whatever the last fetch said."""
        return not self.waiting(t_ms, owned, settled)

    def waiting(
        self, t_ms: int, owned: dict[int, int] | None = None, settled: bool = True
    ) -> list[tuple[str, int]]:
        """The partitions that are not :meth:`ready` yet."""
        owned = owned or {}
        input_topic = self.topics[0]
        behind = []
        for k, last in self.last.items():
            if last > t_ms:
                continue
            if (
                not settled
                or (k[0] == input_topic and self.position.get(k, -1) <= owned.get(k[1], -1))
                or not self._at_end(k)
            ):
                behind.append(k)
        return behind

    def _at_end(self, key: tuple[str, int]) -> bool:
        """At the end of the partition as far as the latest fetch response knows. The
        end-of-partition event alone is not enough: it stays set while nobody polls, and in
        live traffic messages keep arriving after it."""
        if not self.eof[key]:
            return False
        marks = self.clients[key].get_watermark_offsets(TopicPartition(*key), cached=True)
        return marks is None or marks[1] < 0 or self.position.get(key, -1) >= marks[1]

    def advance_to(
        self,
        t_ms: int,
        should_stop: Callable[[], bool] = lambda: False,
        owned: dict[int, int] | None = None,
        settle_at: float | None = None,
    ) -> None:
        """Read until every partition of ``input`` and ``training`` is past ``t_ms``, or at its
        end at ``settle_at`` (``wall_s`` time: when the batch arrived plus the arrival grace)
        or later, and the worker's own partitions past the offsets of its batch (``owned``)."""
        while True:
            left = 0.0 if settle_at is None else settle_at - self.wall_s()
            behind = self.waiting(t_ms, owned, settled=left <= 0)
            if not behind:
                return
            if should_stop():
                raise InterruptedError("stopping")
            # Only the partitions still behind: the others would be read ahead for nothing.
            self.poll(min(0.05, left) if left > 0 else 0.05, behind)

    def poll(self, timeout_s: float = 0.2, keys: list[tuple[str, int]] | None = None) -> int:
        """Read what is fetched of the partitions ``keys`` (default: all); if none has anything,
        wait up to ``timeout_s`` (split between them)."""
        keys = keys or list(self.clients)
        got = [(key, consume_ready(self.clients[key], 10000, 0.0)) for key in keys]
        if timeout_s > 0 and not any(msgs for _, msgs in got):
            for key in keys:
                msgs = consume_ready(self.clients[key], 10000, timeout_s / len(keys))
                if msgs:
                    got = [(key, msgs)]
                    break
        n = 0
        for key, msgs in got:
            if msgs:
                n += len(msgs)
                if key[0] == self.topics[0]:
                    self._read_transactions(key, msgs)
                else:
                    self._read_labels(key, msgs)
        return n

    def _read_transactions(self, key: tuple[str, int], msgs: list[Message]) -> None:
        """Validate one ``input`` partition's messages, observe the accepted ones for the
        terminal state and keep them (and the rejected ones) for the worker if it owns the
        partition. One loop per partition (not per message of all of them): this runs for
        every transaction."""
        good = [m for m in msgs if m.error() is None]  # others: end of partition (see _settle)
        results, accepted = validate_columns([m.value() for m in good], [m.key() for m in good],
                                             self.now_ms())
        queue = self._shared.get(key[1])
        if queue is not None and good:
            chunk = _Chunk([cast(int, m.offset()) for m in good], good, results, accepted)
            chunk = chunk.since(self._share_from.get(key[1], 0))
            if chunk.offsets:
                queue.append(chunk)
        self._settle(key, msgs)
        if accepted is not None:  # all of them (the common case): as columns already
            self._observe(key, accepted.transaction_id, accepted.terminal_id, accepted.time_ms)
            return
        valid = [r for r in results if type(r) is tuple]
        if len(valid) < len(results):  # a dead letter's time is the message's
            dead = (m for m, r in zip(good, results, strict=True) if type(r) is not tuple)
            self.last[key] = max([self.last[key], *(m.timestamp()[1] for m in dead)])
        if valid:
            txs = [r[0] for r in valid]  # type: ignore[index]  # a tuple
            self._observe(key, id_strings(list(map(TX_ID, txs))), id_strings(list(map(TERMINAL_ID, txs))),
                          np.array([r[1] for r in valid], dtype=np.int64))  # type: ignore[index]

    def _observe(self, key: tuple[str, int], tx_ids: list[str], terminal_ids: list[str],
                 times: np.ndarray) -> None:
        """Feed read transactions to the terminal state; the partition is past their times."""
        self.last[key] = max(self.last[key], int(times.max()))
        self.terminal.observe_transactions(tx_ids, terminal_ids, times)
        self.observed += len(tx_ids)

    def _read_labels(self, key: tuple[str, int], msgs: list[Message]) -> None:
        """Decode one ``training`` partition's labels for the terminal state."""
        values = [m.value() for m in msgs if m.error() is None]
        try:
            labels = list(map(_label_decode, values))  # None raises TypeError, as bad JSON does
        except (msgspec.MsgspecError, ValueError, TypeError):
            labels = [lb for lb in map(decode_label, values) if lb is not None]
        self._settle(key, msgs)
        if labels:
            # The latest instant (datetimes compare as instants), rounded as each would be.
            last = round(max(map(_LABELED_AT, labels)).timestamp() * 1000)
            self.last[key] = max(self.last[key], last)
            self.terminal.observe_labels(id_strings(list(map(TX_ID, labels))),
                                         np.fromiter(map(_IS_FRAUD, labels), bool, len(labels)))
            self.labels += len(labels)

    def _settle(self, key: tuple[str, int], msgs: list[Message]) -> None:
        """Position and end-of-partition state after a partition's messages: at its end only if
        the last message or end-of-partition event was the latter (other errors change
        nothing)."""
        for m in reversed(msgs):
            err = m.error()
            if err is None:
                self.eof[key] = False
                self.position[key] = cast(int, m.offset()) + 1
                return
            if err.code() == KafkaError._PARTITION_EOF:
                self.eof[key] = True
                self.position[key] = cast(int, m.offset())
                return

    # ---- the worker's partitions --------------------------------------------------------
    def share(self, partition: int, from_offset: int = 0) -> None:
        """The worker owns this ``input`` partition from ``from_offset`` on (its committed
        offset): keep what is read of it from there for :meth:`take`. The history before it is
        read for the terminal state only; a client already past it is moved back."""
        from_offset = max(0, from_offset)
        key = (self.topics[0], partition)
        if self.position.get(key, self._start.get(key, 0)) > from_offset:
            self.rewind(partition, from_offset)
        else:
            self._shared[partition] = deque()
            self._share_from[partition] = from_offset

    def rewind(self, partition: int, offset: int) -> None:
        """Read the worker's partition again from ``offset`` (an aborted batch, a partition
        assigned behind what was read): what was kept of it is dropped."""
        offset = max(0, offset)
        key = (self.topics[0], partition)
        self.clients[key].assign([TopicPartition(key[0], partition, offset)])
        self.position[key] = offset
        self.eof[key] = False
        self._shared[partition] = deque()
        self._share_from[partition] = offset

    def shared_from(self) -> dict[int, int]:
        """The worker's partition -> the next offset it takes (see :meth:`take`)."""
        return dict(self._share_from)

    def unshare(self, partition: int) -> None:
        self._shared.pop(partition, None)
        self._share_from.pop(partition, None)

    def take(
        self,
        max_messages: int,
        wait_s: float,
        fill_until: float = 0.0,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> dict[int, PartitionBatch]:
        """The worker's next batch: up to ``max_messages`` of its partitions, each in offset
        order (shared fairly between them), validated as they were read. Waits up to
        ``wait_s`` for a first message, and while any came until ``fill_until`` (``wall_s``
        time: the commit interval) unless the batch is full."""
        parts = list(self._shared)
        if not parts:
            time.sleep(wait_s)  # nothing owned: the group may be assigning
            return {}
        topic = self.topics[0]
        quota = max(1, max_messages // len(parts))
        give_up = self.wall_s() + wait_s
        while True:
            short = [(topic, p) for p in parts if self._kept(p) < quota]
            if short:
                self.poll(0.0, short)
            have = sum(map(self._kept, parts))
            now = self.wall_s()
            if have >= max_messages or not short or (now >= fill_until and (have or now >= give_up)):
                return self._cut(parts, max_messages)
            if should_stop():
                raise InterruptedError("stopping")
            self.poll(TAKE_POLL_S, short)

    def _cut(self, parts: list[int], max_messages: int) -> dict[int, PartitionBatch]:
        """Up to ``max_messages`` kept messages, an equal share a partition (what a partition
        leaves of its share goes to the others, in order)."""
        sizes = {p: self._kept(p) for p in parts}
        share = {p: min(n, max_messages // len(parts)) for p, n in sizes.items()}
        left = max_messages - sum(share.values())
        for p in parts:
            extra = min(left, sizes[p] - share[p])
            share[p] += extra
            left -= extra
        out: dict[int, PartitionBatch] = {}
        for p in parts:
            n = share[p]
            if not n:
                continue
            pb = out[p] = self._first(p, n)
            self._share_from[p] = pb.last_offset + 1
        return out

    def _kept(self, partition: int) -> int:
        """Messages of the worker's partition read and not taken yet."""
        return sum(map(len, self._shared[partition]))

    def _first(self, partition: int, n: int) -> PartitionBatch:
        """The first ``n`` kept messages of the worker's partition, as its batch."""
        queue = self._shared[partition]
        chunks = []
        while n > 0:
            chunk = queue.popleft()
            if len(chunk) > n:
                queue.appendleft(chunk.window(n))
                chunk = chunk.window(0, n)
            chunks.append(chunk)
            n -= len(chunk)
        if len(chunks) == 1:
            c = chunks[0]
            return PartitionBatch.of_columns(partition, c.offsets, c.messages, c.results, c.accepted)
        accepted = [c.accepted for c in chunks]
        return PartitionBatch.of_columns(
            partition, list(chain.from_iterable(c.offsets for c in chunks)),
            list(chain.from_iterable(c.messages for c in chunks)),
            list(chain.from_iterable(c.results for c in chunks)),
            TxBatch.concat(accepted) if None not in accepted else None,  # type: ignore[arg-type]
        )

    def lag(self, partition: int) -> int | None:
        """Messages of the worker's partition not taken yet, as far as the latest fetch knows."""
        key = (self.topics[0], partition)
        marks = self.clients[key].get_watermark_offsets(TopicPartition(*key), cached=True)
        if partition not in self._share_from or marks is None or marks[1] < 0:
            return None
        return max(0, marks[1] - self._share_from[partition])

    def close(self) -> None:
        for client in [*self.clients.values(), self._meta]:
            client.close()

