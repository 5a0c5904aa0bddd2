"""The detector's Kafka transactions (:class:`TxnPublisher`, run by the worker's publisher
process, see ``pipeline.publisher``): the producer's configuration, and calls that cannot
block for good.

librdkafka's ``send_offsets_to_transaction`` can wait forever, past its own timeout, when the
group coordinator it cached was removed from the cluster metadata (a broker killed and
restarted): the coordinator request only moves on when that broker changes state, and a
decommissioned broker never does (librdkafka issues #5456 and #5511, open for the version
pinned here; seen in this project's broker fail-over test, both workers stuck > 7 min). The
call therefore runs on a thread of its own, and the publisher gives up on it after a deadline:
it abandons that producer, starts another with the same transactional id (which fences the
old one and aborts its transaction), and the worker decides the batch again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from confluent_kafka import KafkaException, Producer, TopicPartition

if TYPE_CHECKING:  # not in the publisher process (pydantic is heavy)
    from fraudstream.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: ``send_offsets_to_transaction``'s own timeout, and how much longer the publisher waits before
#: it takes the producer for wedged.
SEND_OFFSETS_TIMEOUT_S = 30
WEDGED_AFTER_S = 15


#: Bytes of messages per partition batch (librdkafka's ``batch.size``, counted before
#: compression) when ``output`` accepts batches that large. The publisher hands librdkafka a
#: whole 20,000-decision batch at once, so batches fill to this limit: 2 MB instead of the
#: default 1 MB halves the produce requests, and the followers' fetches that replicate them
#: (brokers ~1-2 us of CPU less a transaction, lower in 9 of 10 paired bench runs; README,
#: session 24).
BATCH_BYTES = 2_000_000
#: librdkafka's own ``batch.size``, kept when ``output``'s limit is unknown or too small.
DEFAULT_BATCH_BYTES = 1_000_000
#: Room left under a topic's ``max.message.bytes``: a batch can pass ``batch.size`` by one
#: message (an ``output`` message is < 20 kB: the input is <= 16 kB), and LZ4 grows
#: incompressible data a little.
_BATCH_ROOM = 64 * 1024


def batch_bytes(max_message_bytes: int | None) -> int:
    """``batch.size`` for an ``output`` topic whose record batches may be at most
    ``max_message_bytes`` long (compressed). A batch the broker refuses as too large would
    fail its transaction every time it is redone, so a batch must fit even when its data
    does not compress: the fixed 2 MB only with a topic that allows it (fraudstream creates
    ``output`` with ``infra.topics.OUTPUT_MAX_MESSAGE_BYTES``); otherwise the default."""
    if max_message_bytes is None:
        return DEFAULT_BATCH_BYTES
    room = max_message_bytes - _BATCH_ROOM
    return BATCH_BYTES if room >= BATCH_BYTES else max(_BATCH_ROOM, min(DEFAULT_BATCH_BYTES, room))


def producer_config(settings: Settings, transactional_id: str, batch: int = DEFAULT_BATCH_BYTES
                    ) -> dict[str, Any]:
    """The detector's transactional producer (also what the bench's Kafka-alone pass-through
    and ``benchmarks/txn_steps.py`` measure, so that they time the same protocol). ``batch``:
    see :func:`batch_bytes`."""
    return {
        **settings.kafka_client_config(),
        "batch.size": batch,
        # A produce request carries a batch per partition: leave it room for three.
        "message.max.bytes": max(1_000_000, 3 * batch + _BATCH_ROOM),
        "transactional.id": transactional_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        # Back-to-back transactions: the next one's first requests are refused while the
        # coordinator still writes the previous one's markers (CONCURRENT_TRANSACTIONS);
        # librdkafka's default 100 ms before retrying was most of a commit's time.
        "retry.backoff.ms": 10,
        # A worker frozen mid-transaction (VM pause, SIGSTOP) blocks its partitions' next
        # owner until the coordinator aborts the transaction: keep that short, but above a
        # broker fail-over (messages of a transaction time out with it). A commit slower
        # than this is aborted and the batch redone, which is safe.
        "transaction.timeout.ms": 30_000,
        "log_level": 3,
    }


def produce(
    producer: Producer, topic: str, value: bytes | None, key: bytes | None, headers: list | None = None
) -> None:
    """Queue one message, waiting while the producer's local queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)


class Wedged(Exception):
    """The call did not return by its deadline; the client it was made on is unusable."""


def call_with_deadline(call: Callable[[], T], deadline_s: float, name: str = "txn-call") -> T:
    """``call()``'s result or exception, or :class:`Wedged` after ``deadline_s``. The thread
    of a wedged call is a daemon left blocked: it cannot be interrupted from Python."""
    done = threading.Event()
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    if not done.wait(deadline_s):
        raise Wedged(f"{name} still blocked after {deadline_s:.0f} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]


@dataclass(frozen=True)
class Topics:
    input: str
    output: str
    dlq: str


#: A dead letter to publish: (value, key, headers).
DeadRecord = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


class TxnPublisher:
    """The detector's Kafka transactions: a batch's decisions to ``output``, its dead letters
    to the DLQ and its consumed offsets, atomically. Runs in the publisher process (or in
    the worker's, see ``pipeline.publisher``); ``aborts`` and ``retries`` count for metrics.

    Once ``should_stop()`` (SIGTERM) a retriable error is raised, not retried: the batch is
    redone by whoever consumes it next.
    """

    def __init__(self, config: dict[str, Any], topics: Topics,
                 should_stop: Callable[[], bool] = lambda: False,
                 new_producer: Callable[[], Producer] | None = None) -> None:
        self.config = config
        self.topics = topics
        self.should_stop = should_stop
        self._new = new_producer or (lambda: Producer(self.config))
        self.producer = self._new()
        self.aborts = 0
        self.retries = 0

    def init(self) -> None:
        self._retrying(lambda: self.producer.init_transactions(60))

    def commit(self, outputs: Iterable[tuple[bytes, bytes]], dead: list[DeadRecord],
               offsets: list[tuple[int, int]], group_metadata: object,
               produced: Callable[[], None] = lambda: None) -> bool:
        """Publish the decisions (``output`` key and value), the dead letters and the offsets
        (partition, next offset of ``input``) atomically. False: aborted (the caller
        rewinds); an error that is neither retriable nor abortable is raised. ``produced``
        is called once every message is handed to librdkafka (the rest is waiting)."""
        if not offsets:
            return True
        tps = [TopicPartition(self.topics.input, p, o) for p, o in offsets]
        try:
            self.producer.begin_transaction()
            out_topic, queue = self.topics.output, self.producer.produce
            for key, value in outputs:
                try:
                    queue(out_topic, value, key)
                except BufferError:
                    produce(self.producer, out_topic, value, key)
            if isinstance(outputs, list):
                outputs.clear()  # librdkafka has its copies: free ours before the commit's wait
            for dead_value, dead_key, headers in dead:
                produce(self.producer, self.topics.dlq, dead_value, dead_key, headers)
            produced()
            producer = self.producer
            self._retrying(lambda: call_with_deadline(
                lambda: producer.send_offsets_to_transaction(tps, group_metadata, SEND_OFFSETS_TIMEOUT_S),
                SEND_OFFSETS_TIMEOUT_S + WEDGED_AFTER_S, "send-offsets"))
            self._retrying(lambda: self.producer.commit_transaction(60))
            return True
        except Wedged as exc:
            self.aborts += 1
            log.warning("kafka.producer.wedged", error=str(exc))
            self._reset(purge=False)
            return False
        except KafkaException as exc:
            err = exc.args[0]
            self.aborts += 1
            if err.txn_requires_abort():
                log.warning("kafka.transaction.abort", error=str(err))
                try:
                    self._retrying(lambda: self.producer.abort_transaction(60))
                except KafkaException as abort_exc:
                    log.warning("kafka.transaction.abort_failed", error=str(abort_exc.args[0]))
                    self._reset()
            elif err.fatal() or self._fatal():
                log.warning("kafka.producer.fatal", error=str(err))
                self._reset()
            else:
                raise
            return False

    def close(self) -> None:
        with contextlib.suppress(KafkaException):  # a fenced producer has nothing to flush
            self.producer.flush(10)

    def _reset(self, purge: bool = True) -> None:
        """After a fatal producer error (e.g. the coordinator aborted a transaction that
        outlived its timeout and bumped the epoch) or a wedged call (``purge=False``: the old
        producer is left as it is, its blocked thread keeps it alive): a new producer with the
        same transactional id; its ``init_transactions`` fences the old one and aborts what it
        left."""
        if purge:
            with contextlib.suppress(KafkaException):
                self.producer.purge()
        self.producer = self._new()
        self.init()
        log.warning("kafka.producer.reset")

    def _fatal(self) -> bool:
        """Whether the producer is in a fatal state (then every call fails the same way)."""
        try:
            self.producer.poll(0)
        except KafkaException as exc:
            return bool(exc.args[0].fatal())
        return False

    def _retrying(self, call: Callable[[], object]) -> None:
        """Retry a transactional call while Kafka says the error is retriable (e.g. a timeout)."""
        backoff = 0.2
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or self.should_stop():
                    raise
                self.retries += 1
                log.warning("kafka.retry", error=str(err), backoff_s=backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
