"""One detector worker: the I/O shell around :func:`fraudstream.pipeline.core.process`.

The worker's consumer joins the group and holds the assignment; its partitions stay paused,
and their messages are read (and validated, once) by the global reader, which every worker
runs over all of ``input`` for the terminal state anyway (see ``pipeline.global_reader``).
Per batch taken from there (a Kafka transaction each):

1. invalid messages and duplicate ``transaction_id``\\ s go to the DLQ;
2. advance the global reader (terminal state) to the batch's latest event time;
3. compute features, rules, score and decision per partition (pure core);
4. write ``review``/``decline`` rows to PostgreSQL (idempotent, retried until it succeeds);
5. in one Kafka transaction: the decisions to ``output``, the dead letters to ``input.dlq`` and
   the consumed offsets (``send_offsets_to_transaction``); commit.

A crash anywhere before step 5 commits leaves the offsets where they were: the batch is
consumed again (by this worker after a restart, or by whichever worker gets the partition),
its decisions are produced again in a new transaction (the aborted ones are invisible to
``read_committed`` consumers) and its rows are not inserted twice. The customer state of a
newly assigned partition is rebuilt by replaying that partition's last 31 days up to the
committed offset, so features after a crash equal those of an uninterrupted run.

Under load four batches are in the works at once (see ``_step``): while the decider thread
takes batch k+2 from the reader through steps 1-3, the publisher process encodes batch k+1
(decided, ``_held`` for one round) and the worker's thread delivers batch k (steps 4-5; the
Kafka transaction runs in the publisher, see ``pipeline.publisher``). Rebalance
callbacks run on the worker's thread between deliveries, so no commit is in flight while they
run (a transactional offset commit cannot finish during a rebalance: waiting for one in a
callback deadlocks); they stop the decider between batches instead, and a revoked
partition's part of the batches decided but not committed is dropped (its new owner decides
it again). If a commit fails, the batches decided after it are dropped too and their
partitions are rewound. A batch smaller than full (live traffic that the worker keeps up
with) is not held: it is delivered as soon as it is decided.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import structlog
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from fraudstream.contracts.batch import id_strings
from fraudstream.features.customer import CustomerState
from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.terminal import TerminalState
from fraudstream.infra.topics import max_message_bytes
from fraudstream.learning.watcher import ModelWatcher
from fraudstream.pipeline import metrics
from fraudstream.pipeline.core import Decisions, Model, process
from fraudstream.pipeline.decode import DeadLetter, PartitionBatch, split
from fraudstream.pipeline.global_reader import GlobalReader
from fraudstream.pipeline.pack import pack
from fraudstream.pipeline.publisher import InlinePublisher, ProcessPublisher, Publisher
from fraudstream.pipeline.txn import DeadRecord, Topics, batch_bytes, producer_config
from fraudstream.rules.watcher import RuleWatcher
from fraudstream.scoring.combine import DECISION_NAMES, Thresholds
from fraudstream.settings import Settings
from fraudstream.sinks.postgres import Fenced, SuspiciousRow, SuspiciousSink

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
CUSTOMER_HISTORY_MS = 31 * DAY_MS  # customer windows (30 d) + margin
TERMINAL_HISTORY_MS = 38 * DAY_MS  # terminal windows (7 + 30 d) + margin
#: Terminal events kept beyond the 37-day windows: the global reader may be up to its
#: read-ahead past the transactions being decided.
TERMINAL_LATE_MARGIN_MS = 2 * DAY_MS
#: Messages per batch (one Kafka transaction each): a commit costs tens of ms whatever its size.
DEFAULT_BATCH_SIZE = 20_000
#: How long a batch waits, after it arrived, for other partitions at their end to receive the
#: transactions of the same moment (see ``GlobalReader``): live latency against exact 10-minute
#: terminal counts when producers deliver partitions a little apart.
DEFAULT_ARRIVAL_GRACE_S = 0.1
#: Batches queued on the decider: while this thread delivers one (and holds the next, see
#: ``_step``), the decider takes and decides the ones after. With 1 the decider waited for a
#: delivery ~10 % of its time (py-spy, session 23) and the machine idled 13-17 %; with 2 it
#: idled 6-9 %. Quick 1M bench, alternating: 52,251 / 52,923 / 50,857 tx/s against 55,819 /
#: 44,346 / 46,850 with 1; RSS max ~27 MB more (a decided batch more held). Session 17, before
#: the publisher process and its lower priority, had found 2 no faster.
DECIDE_AHEAD = 2
#: How long an idle worker waits for a first message before looking at the group again.
TAKE_WAIT_S = 0.2
#: Tracked objects alive beyond those at the last collection before a young collection runs
#: (Python's default: 700). A batch keeps ~8 tracked objects a transaction alive until it is
#: committed (messages, lists, tuples): at 20,000 the collector traversed them several times a
#: batch, ~3 us a transaction (a tenth of the detector's time). Above what two batches hold it
#: runs only when something accumulates (cyclic garbage), which bounds that garbage.
GC_YOUNG_THRESHOLD = 1_000_000
GC_INTERVAL_S = 60.0  # see Worker._collect_cycles


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str = "fraudstream-detector",
        batch_size: int = DEFAULT_BATCH_SIZE,
        commit_interval_s: float = 0.0,
        arrival_grace_s: float = DEFAULT_ARRIVAL_GRACE_S,
        thresholds: Thresholds | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        model: Model | None = None,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.batch_size = batch_size
        self.commit_interval_s = commit_interval_s
        self.arrival_grace_s = arrival_grace_s
        self._last_commit = 0.0  # monotonic time the last batch was committed
        self.thresholds = thresholds or Thresholds()
        self.clock_ms = clock_ms
        self.model = model
        self.stopping = False
        self.states: dict[int, CustomerState] = {}
        self.progress: dict[int, int] = {}  # partition -> latest event time decided
        self.terminal = TerminalState(late_margin_ms=TERMINAL_LATE_MARGIN_MS)
        kafka = settings.kafka_client_config()
        self.consumer = Consumer({
            **kafka,
            "group.id": group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "max.poll.interval.ms": 600_000,
            "session.timeout.ms": 15_000,
            "heartbeat.interval.ms": 3_000,
            # It holds the assignment only: its partitions are paused, their messages come from
            # the global reader (see _on_assign).
            "queued.min.messages": 1,
            "log_level": 3,
        })
        self.instance_id = f"{group_id}-{uuid.uuid4().hex[:12]}"
        self.epochs: dict[int, int] = {}  # partition -> fencing epoch in PostgreSQL (sink.claim)
        # How large the publisher's batches to ``output`` may be, read once (a replacement
        # publisher reuses it).
        limit = max_message_bytes(AdminClient(settings.kafka_client_config()), settings.topic_output)
        self._batch_bytes = batch_bytes(limit)
        log.info("worker.output_batches", max_message_bytes=limit, batch_bytes=self._batch_bytes)
        self.publisher = self._new_publisher()
        self._counted = (0, 0)  # the publisher's aborts and retries already in the metrics
        self._batch_id = 0  # of the last batch decided (staged in the publisher)
        self.reader = GlobalReader(settings, self.terminal, clock_ms)
        self.sink = SuspiciousSink(settings.dsn, should_stop=lambda: self.stopping)
        self.rules = RuleWatcher(settings.dsn, interval_s=1.0, features=FEATURE_NAMES)
        # A fixed model (tests, benchmarks) wins; otherwise the registry's active one, hot-swapped.
        self.models = None if model is not None else ModelWatcher(settings.dsn, interval_s=1.0,
                                                                  features=FEATURE_NAMES)
        self.processed = 0
        # Takes and decides batches while this thread delivers the ones before (see _step).
        self._decider = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decide")
        self._jobs: deque[_Job] = deque()
        # A full batch decided and staged, delivered at the next _step: the publisher encodes
        # it meanwhile.
        self._held: _Prepared | None = None
        self._last_lag = 0.0
        self._last_collect = time.monotonic()
        self._last_processed = 0

    def _new_publisher(self) -> Publisher:
        """The Kafka transactions, in a process of their own by default (``pipeline.publisher``)."""
        s = self.settings
        config = producer_config(s, self.instance_id, self._batch_bytes)
        topics = Topics(input=s.topic_input, output=s.topic_output, dlq=s.topic_dlq)
        if s.publisher_process:
            return ProcessPublisher(config, topics, lambda: self.stopping, s.log_level, s.log_json,
                                    nice=s.publisher_nice)
        return InlinePublisher(config, topics, lambda: self.stopping)

    # ---- lifecycle -------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def stop(*_: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self, max_idle_s: float | None = None) -> None:
        """Consume until SIGTERM (or ``max_idle_s`` without input, for batch runs)."""
        self.publisher.start()
        self.rules.poll(force=True)
        self._poll_model(force=True)
        self.reader.start(self._global_start_ms())
        self.consumer.subscribe(
            [self.settings.topic_input], on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        idle_since = time.monotonic()
        # Each batch allocates a few objects per message (decoded messages, output rows): with
        # the default thresholds the collector would traverse the long-lived state every ~70k
        # allocations, a quarter of the worker's time (see GC_YOUNG_THRESHOLD).
        thresholds = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, thresholds[1], thresholds[2])
        try:
            while not self.stopping:
                self._poll_group()
                self.rules.poll()
                self._poll_model()
                self.publisher.check()
                if self._step():
                    idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                    break
                self._report_lag()
                self._collect_cycles()
        except InterruptedError:
            pass
        finally:
            gc.set_threshold(*thresholds)
            try:
                self._drain()  # commit what was decided
            except (InterruptedError, KafkaException) as exc:  # stopping: the batch is redone
                log.warning("worker.stop.uncommitted", error=str(exc))
            finally:
                self.close()

    def _poll_group(self) -> None:
        """Serve the group: rebalance callbacks run here, on this thread. The partitions are
        paused (their messages are read by the global reader), so nothing else comes but
        errors, or a message fetched before its partition was paused (read there as well)."""
        for m in self.consumer.consume(100, timeout=0):
            self._usable(m)  # logs the errors

    def _poll_model(self, force: bool = False) -> None:
        """Pick up a newly promoted model between batches (within about a second)."""
        if self.models is None:
            return
        new = self.models.poll(force=force)
        if new is not None:
            new.explain_min_prob = self.thresholds.review  # contributions only where they show
            self.model = new
            log.info("model.activated", version=new.version)

    def close(self) -> None:
        log.info("worker.stop", processed=self.processed)
        try:
            self.consumer.close()
        finally:
            self._decider.shutdown(wait=True)
            self.reader.close()
            self.sink.close()
            self.publisher.close()

    @staticmethod
    def _usable(m: Message) -> bool:
        err = m.error()
        if err is None:
            return True
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer.error", error=str(err))
        return False

    # ---- rebalancing and state restore ------------------------------------------------
    def _committed(self, partitions: list[int]) -> dict[int, int]:
        """Committed offsets. They can stay unavailable while a previous owner's transaction is
        open (read_committed waits for it to end): retried, not fatal."""
        tps = [TopicPartition(self.settings.topic_input, p) for p in partitions]
        while True:
            try:
                return {tp.partition: tp.offset for tp in self.consumer.committed(tps, timeout=30)}
            except KafkaException as exc:
                if self.stopping:
                    raise
                metrics.RETRIES.labels("kafka").inc()
                log.warning("kafka.committed.retry", error=str(exc.args[0]))

    def _time_of(self, probe: Consumer, partition: int, offset: int) -> int | None:
        """Event time (message timestamp) of the message at ``offset``."""
        probe.assign([TopicPartition(self.settings.topic_input, partition, offset)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for m in probe.consume(1, timeout=1):
                if m.error() is None:
                    return m.timestamp()[1]
        return None

    def _first_time(self, partition: int) -> int | None:
        """Event time of the partition's first message; None when it has none (an empty
        partition needs no history, and must not cost a rebuild at every assignment)."""
        probe = self._probe()
        try:
            low, high = probe.get_watermark_offsets(
                TopicPartition(self.settings.topic_input, partition), timeout=30)
            return self._time_of(probe, partition, low) if high > low else None
        finally:
            probe.close()

    def _probe(self) -> Consumer:
        return Consumer({
            **self.settings.kafka_client_config(), "group.id": f"{self.group_id}-restore",
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "auto.offset.reset": "earliest", "log_level": 3,
        })

    def _global_start_ms(self) -> int | None:
        """Where the terminal state must start: the terminal horizon before the oldest commit."""
        parts = self.reader.partitions(self.settings.topic_input)
        committed = self._committed(parts)
        if any(off <= 0 for off in committed.values()):
            return None
        probe = self._probe()
        try:
            times = [self._time_of(probe, p, off - 1) for p, off in committed.items()]
        finally:
            probe.close()
        if any(t is None for t in times):
            return None
        return min(t for t in times if t is not None) - TERMINAL_HISTORY_MS

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.stopping:
            # Stopping (SIGTERM), maybe inside consumer.close(): the group hands these on as
            # soon as we leave. Claiming them would fetch committed offsets, which a closing
            # consumer never gets (a worker once failed its clean stop after a 30 s timeout).
            log.info("partitions.assigned.ignored", partitions=[tp.partition for tp in partitions])
            return
        # Held, not fetched: the global reader reads them (from the committed offsets, below).
        consumer.incremental_assign(partitions)
        consumer.pause(partitions)
        self._quiesce()  # the decider reads the states and the terminal state rebuilt here
        resumes: list[int] = []
        committed = self._committed([tp.partition for tp in partitions])
        for tp in partitions:
            started = time.monotonic()
            # Fence the previous owner's PostgreSQL writes before deciding anything again.
            self.epochs[tp.partition] = self.sink.claim(
                self.settings.topic_input, tp.partition, committed[tp.partition], self.instance_id)
            self.states[tp.partition], last_time = self._restore(tp.partition, committed[tp.partition])
            if last_time is None:
                # Nothing committed: decided from its first message, which may be older than
                # anything still held (this worker ran ahead on its other partitions).
                last_time = self._first_time(tp.partition)
            if last_time is not None:
                resumes.append(last_time)
            self.reader.share(tp.partition, committed[tp.partition])
            metrics.RESTORE_SECONDS.observe(time.monotonic() - started)
        if resumes and not self.terminal.exact_at(min(resumes)):
            self._rebuild_terminal(min(resumes))
        metrics.ASSIGNED.set(len(self.states))
        log.info("partitions.assigned", partitions=[tp.partition for tp in partitions])

    def _rebuild_terminal(self, resume_ms: int) -> None:
        """Re-read the terminal state from the log for a partition that resumes further back
        than the state still covers (this worker ran ahead on its other partitions)."""
        floor = min([resume_ms, *self.progress.values()])
        log.info("terminal.rebuild", resume_ms=resume_ms, from_ms=floor - TERMINAL_HISTORY_MS)
        shared = self.reader.shared_from()  # the new reader re-reads history the worker skips
        self.reader.close()
        self.terminal = TerminalState(late_margin_ms=TERMINAL_LATE_MARGIN_MS)
        self.reader = GlobalReader(self.settings, self.terminal, self.clock_ms)
        self.reader.start(floor - TERMINAL_HISTORY_MS)
        for p in self.states:
            self.reader.share(p, shared.get(p, 0))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions}
        self._quiesce()
        for job in self._jobs:  # dropped from what it decided: the new owner decides them again
            job.revoked |= revoked
        if self._held is not None:
            self._held = self._held.without(revoked)
        for tp in partitions:
            self._forget(tp.partition)
        metrics.ASSIGNED.set(len(self.states))
        log.info("partitions.revoked", partitions=[tp.partition for tp in partitions])

    def _forget(self, partition: int) -> None:
        """Drop everything held for a partition this worker no longer owns."""
        self.states.pop(partition, None)
        self.progress.pop(partition, None)
        self.epochs.pop(partition, None)
        self.reader.unshare(partition)
        with contextlib.suppress(KeyError):
            metrics.LAG.remove(str(partition))

    def _restore(self, partition: int, committed: int) -> tuple[CustomerState, int | None]:
        """Rebuild a partition's customer state from its log, up to the ``committed`` offset.
        Also returns the event time of the last committed message (None: nothing committed)."""
        state = CustomerState()
        if committed <= 0:
            return state, None
        topic = self.settings.topic_input
        probe = self._probe()
        try:
            last_time = self._time_of(probe, partition, committed - 1)
            start = OFFSET_BEGINNING
            if last_time is not None:
                found = probe.offsets_for_times(
                    [TopicPartition(topic, partition, max(0, last_time - CUSTOMER_HISTORY_MS))], timeout=30
                )[0]
                start = found.offset if found.offset >= 0 else OFFSET_BEGINNING
            probe.assign([TopicPartition(topic, partition, start)])
            replayed, position = 0, -1
            while position < committed - 1:
                msgs = [m for m in probe.consume(10000, timeout=1) if m.error() is None]
                msgs = [m for m in msgs if cast(int, m.offset()) < committed]
                if not msgs:
                    continue
                position = cast(int, msgs[-1].offset())
                pb = split(msgs, self.clock_ms()).get(partition)
                if pb is not None:
                    self._dedupe(pb, state)
                    if pb.valid:
                        state.replay(pb.columns())
                        replayed += len(pb.valid)
        finally:
            probe.close()
        log.info("partition.restored", partition=partition, replayed=replayed, committed=committed)
        return state, last_time

    # ---- the batch -------------------------------------------------------------------
    @staticmethod
    def _dedupe(pb: PartitionBatch, state: CustomerState) -> None:
        """Move duplicate transaction ids (already seen by this partition) to the dead letters."""
        if not pb.valid:
            return
        ids = pb.accepted.transaction_id if pb.accepted is not None else id_strings(
            [t.transaction_id for t in pb.valid])
        dup = state.seen(ids)
        if dup.any():
            keep = ~dup
            pb.accepted = None  # columns of the ones kept are built again
            for i in np.flatnonzero(dup):
                pb.dead.append(
                    DeadLetter(pb.messages[i], "duplicate_transaction_id",
                               f"transaction_id {pb.valid[i].transaction_id} already processed")
                )
            pb.valid = [t for t, k in zip(pb.valid, keep, strict=True) if k]
            pb.offsets = [o for o, k in zip(pb.offsets, keep, strict=True) if k]
            pb.times = [t for t, k in zip(pb.times, keep, strict=True) if k]

    def _step(self) -> int:
        """Take the oldest batch the decider finished and deliver what is due; returns how many
        messages that batch had (0: none came in ``TAKE_WAIT_S``).

        The decider is given the next batch (``DECIDE_AHEAD``) as soon as it hands one over,
        and takes its messages from the global reader itself, so deciding (CPU on its
        thread) and delivering (mostly waiting for PostgreSQL and the publisher process, the
        GIL released) overlap. A full batch (a backlog) is held for
        one round: the publisher encodes its messages (staged by ``_prepare``) while this
        thread delivers the one before, instead of while this thread waits for it. A smaller
        one (live traffic the worker keeps up with) is delivered at once. Every call on the
        worker's own consumer stays on this thread; rebalance callbacks run inside
        ``_poll_group`` and let the decider finish first (``_quiesce``)."""
        self._submit()
        prepared = self._collect()
        self._submit()
        due = [self._held] if self._held is not None else []
        self._held = None
        if prepared is not None and prepared.batches:
            if prepared.n_messages >= self.batch_size and not self.stopping:
                self._held = prepared
            else:
                due.append(prepared)
        self._deliver_all(due)
        return prepared.n_messages if prepared is not None else 0

    def _submit(self) -> None:
        while len(self._jobs) < DECIDE_AHEAD and not self.stopping:
            self._jobs.append(_Job(self._decider.submit(self._prepare)))

    def _deliver_all(self, due: list[_Prepared]) -> None:
        """Deliver ``due`` in order. If one is aborted or fenced, everything decided after it
        was decided on top of it: dropped, and its partitions consumed again."""
        for i, batch in enumerate(due):
            try:
                self._last_commit = time.monotonic()
                outcome = self._deliver(batch)
            except BaseException:
                self._quiesce()  # never leave the decider running on a stopping worker
                raise
            if outcome.lost is None and outcome.rewind is None:
                self._settle(outcome)  # committed: progress and metrics
                continue
            # Their state must not change under the decider: let it finish before rewinding.
            later = due[i + 1:]
            if self._held is not None:
                later.append(self._held)
                self._held = None
            later.extend(self._finished())
            rewound = self._settle(outcome) or set()
            again = {p for b in later for p in b.partitions if p in self.states and p not in rewound}
            self._rewind(sorted(again))
            return

    def _drain(self) -> None:
        """Stopping: deliver what was decided, up to the first batch the decider did not finish
        (nothing after a gap may be committed)."""
        due = [self._held] if self._held is not None else []
        self._held = None
        self._deliver_all([*due, *self._finished()])

    def _quiesce(self) -> None:
        """Stop the decider between batches: the ones it has not started are dropped (they
        took nothing), the one it is deciding finishes. A rebalance callback changes what it
        reads."""
        kept = [job for job in self._jobs if not job.future.cancel()]
        self._jobs = deque(kept)
        wait([job.future for job in kept])

    def _finished(self) -> list[_Prepared]:
        """What the decider decided and this thread has not collected, once it is stopped
        (see :meth:`_quiesce`), in order, up to a batch it gave up (stopping): the ones after
        that are dropped, they would follow a gap. Raises any other error it raised."""
        self._quiesce()
        out = []
        try:
            while (prepared := self._collect()) is not None:
                out.append(prepared)
        except InterruptedError:
            pass
        return out

    def _collect(self) -> _Prepared | None:
        """The oldest batch the decider took, once decided, minus the partitions revoked
        meanwhile (None: nothing queued). Raises what the decider raised (the other queued
        batches are dropped then: they would follow a gap)."""
        if not self._jobs:
            return None
        job = self._jobs.popleft()
        try:
            prepared = job.future.result()
        except BaseException:
            self._quiesce()
            self._jobs.clear()
            raise
        return prepared.without(job.revoked) if job.revoked else prepared

    def _prepare(self) -> _Prepared:
        """Steps 1-3: take the next batch from the global reader (validated as it was read),
        features, rules, score, decision; stage the outputs and build the rows."""
        # Hold before the reader reads anything: reading the batch runs the terminal state's
        # clock up to its fastest partition, and without a hold it would expire what a slower
        # (e.g. just assigned) partition still needs. Before decoding, a partition's earliest
        # time to decide is taken as its last decided one (none yet: everything is kept).
        self._hold_terminal({})
        fill_until = self._last_commit + self.commit_interval_s if self.commit_interval_s else 0.0
        taken = self.reader.take(self.batch_size, TAKE_WAIT_S, fill_until,
                                 should_stop=lambda: self.stopping)
        arrived = time.monotonic()
        batches: list[PartitionBatch] = []
        for pb in taken.values():
            state = self.states[pb.partition]  # the reader shares only owned partitions
            self._dedupe(pb, state)
            pb.messages = []  # only duplicates needed them
            batches.append(pb)
        columns = {pb.partition: pb.columns() for pb in batches if pb.valid}
        if columns:
            # The terminal state keeps what the slowest owned partition still needs, however
            # far the reader runs ahead for the others.
            self._hold_terminal({p: int(c.time_ms.min()) for p, c in columns.items()})
            t_max = max(int(c.time_ms.max()) for c in columns.values())
            owned = {pb.partition: pb.last_offset for pb in batches}
            self.reader.advance_to(t_max, should_stop=lambda: self.stopping, owned=owned,
                                   settle_at=arrived + self.arrival_grace_s)
        rules, model = self.rules.current, self.model  # one of each per batch (swapped meanwhile)
        now_iso = datetime.now(UTC).isoformat()
        self._batch_id += 1
        n_messages = sum(len(pb.valid) + len(pb.dead) for pb in batches)
        out = _Prepared(batch_id=self._batch_id, batches=batches, started=arrived, n_messages=n_messages)
        payloads: dict[int, bytes] = {}
        for pb in batches:
            if pb.partition not in columns:
                continue
            cols = columns[pb.partition]
            state = self.states[pb.partition]
            dec = process(cols, state, self.terminal, rules, model, self.thresholds)
            out.decided[pb.partition] = dec
            payloads[pb.partition] = pack(pb, dec, now_iso)
            out.rows.extend(self._suspicious(pb, dec))
            out.latest[pb.partition] = int(cols.time_ms.max())
        out.epochs = {r.source_partition: self.epochs[r.source_partition] for r in out.rows}
        self.publisher.stage(out.batch_id, payloads)  # encoded there while this batch waits
        return out

    def _hold_terminal(self, pending: dict[int, int]) -> None:
        """Keep in the terminal state what the slowest owned partition still needs: from the
        earliest time of its ``pending`` batch, else the last time it decided (0, keeping
        everything, for a partition that has decided nothing yet)."""
        floor = [pending.get(p, self.progress.get(p)) for p in self.states]
        self.terminal.hold(min((f if f is not None else 0) for f in floor) if floor else None)

    def _deliver(self, b: _Prepared) -> _Outcome:
        """Steps 4-5: rows to PostgreSQL, then the Kafka transaction."""
        partitions = b.partitions
        try:
            inserted = self.sink.write(b.rows, self.settings.topic_input, b.epochs)
        except Fenced as exc:
            return _Outcome(b, lost=exc.partitions, rewind=[p for p in partitions if p not in exc.partitions])
        if not self._commit(b.batch_id, b.batches):
            return _Outcome(b, rewind=partitions)
        return _Outcome(b, inserted=inserted)

    def _settle(self, outcome: _Outcome) -> set[int] | None:
        """Account for a delivered batch. None: committed; else the partitions that were
        rewound (aborted) or given up (fenced)."""
        if outcome.lost is not None:
            self._fenced(outcome.lost, outcome.rewind or [])
        elif outcome.rewind is not None:
            self._rewind(outcome.rewind)
        else:
            self._account(outcome)
            return None
        return set(outcome.rewind or []) | set(outcome.lost or [])

    def _account(self, outcome: _Outcome) -> None:
        """Progress and metrics of a committed batch."""
        b = outcome.batch
        self.progress.update(b.latest)
        n_valid = sum(len(pb.valid) for pb in b.batches)
        self.processed += n_valid
        metrics.TRANSACTIONS.inc(n_valid)
        metrics.SUSPICIOUS_ROWS.inc(outcome.inserted)
        for pb in b.batches:
            for d in pb.dead:
                metrics.DLQ.labels(d.reason).inc()
        for dec in b.decided.values():
            codes, counts = np.unique(dec.decision, return_counts=True)
            for c, k in zip(codes.tolist(), counts.tolist(), strict=True):
                metrics.DECISIONS.labels(DECISION_NAMES[c]).inc(k)
        metrics.BATCH_SIZE.observe(b.n_messages)
        metrics.BATCH_SECONDS.observe(outcome.finished - b.started)

    @staticmethod
    def _suspicious(pb: PartitionBatch, dec: Decisions) -> list[SuspiciousRow]:
        idx = np.flatnonzero(dec.decision >= 1)
        if not len(idx):
            return []
        now = datetime.now(UTC)
        names = list(dec.features)
        # np.nan_to_num's defaults here (infinities become the largest finite floats).
        cols = [np.nan_to_num(np.asarray(dec.features[n], dtype=np.float64)[idx]).tolist() for n in names]
        feats = [{n: col[j] for n, col in zip(names, cols, strict=True)} for j in range(len(idx))]
        scores = dec.score[idx].tolist()
        codes = dec.decision[idx].tolist()
        rows = []
        for j, i in enumerate(idx.tolist()):
            tx = pb.valid[i]
            rows.append(SuspiciousRow(
                transaction_id=str(tx.transaction_id), tx_datetime=tx.tx_datetime,
                customer_id=str(tx.customer_id), terminal_id=str(tx.terminal_id),
                tx_amount=tx.tx_amount, currency=tx.currency, channel=tx.channel,
                merchant_category=tx.merchant_category, country=tx.country, lat=tx.lat, lon=tx.lon,
                score=scores[j], decision=DECISION_NAMES[codes[j]],
                reasons=dec.reasons[i],
                features=feats[j],
                model_version=dec.model_version, rules_version=dec.rules_version, detected_at=now,
                source_partition=pb.partition, source_offset=pb.offsets[i],
            ))
        return rows

    def _commit(self, batch_id: int, batches: list[PartitionBatch]) -> bool:
        """Publish the batch (its partitions' decisions, staged by ``_prepare``), its dead
        letters and its offsets atomically. False: aborted (the caller rewinds)."""
        offsets = [(pb.partition, pb.last_offset + 1) for pb in batches]
        dead: list[DeadRecord] = [
            (d.message.value(), d.message.key(), _dlq_headers(d)) for pb in batches for d in pb.dead
        ]
        try:
            return self.publisher.commit(batch_id, [pb.partition for pb in batches], dead, offsets,
                                         self.consumer.consumer_group_metadata())
        finally:
            aborts, retries = self.publisher.aborts, self.publisher.retries
            metrics.ABORTS.inc(aborts - self._counted[0])
            metrics.RETRIES.labels("kafka").inc(retries - self._counted[1])
            self._counted = (aborts, retries)

    def _fenced(self, lost: list[int], batch: list[int]) -> None:
        """Another worker claimed ``lost``: forget them (the group is handing them over) and
        consume the batch's other partitions again (their rows were not written either)."""
        log.warning("postgres.fenced", partitions=lost)
        metrics.ABORTS.inc()
        for p in lost:
            self._forget(p)
        self._rewind([p for p in batch if p not in lost])

    def _rewind(self, partitions: list[int]) -> None:
        """After an abort: rebuild the state of still-owned partitions and consume them again.
        The rows the aborted batch wrote are deleted: the batch may not be decided the same way
        again (a model or rule set swapped in between)."""
        committed = self._committed(partitions)
        for p in partitions:
            if p in self.states:
                try:
                    self.sink.discard_uncommitted(self.settings.topic_input, p, committed[p], self.epochs[p])
                except Fenced:
                    self._fenced([p], [])
                    continue
                self.states[p], _ = self._restore(p, committed[p])
                self.reader.rewind(p, committed[p])  # nothing committed (< 0): from the start

    def _collect_cycles(self) -> None:
        """Collect the young generations once a minute: with the high threshold the collector
        would otherwise run only after ~1M tracked objects of cyclic garbage (if some library
        makes any) had piled up. A few tens of ms, a minute's garbage at most."""
        now = time.monotonic()
        if now - self._last_collect >= GC_INTERVAL_S:
            self._last_collect = now
            gc.collect(1)

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < 5:
            return
        elapsed = now - self._last_lag if self._last_lag else 0.0
        if elapsed:
            log.info("worker.progress", processed=self.processed,
                     rate=round((self.processed - self._last_processed) / elapsed),
                     partitions=sorted(self.states), global_observed=self.reader.observed,
                     global_labels=self.reader.labels)
        self._last_processed = self.processed
        self._last_lag = now
        try:
            for p in self.states:
                lag = self.reader.lag(p)
                if lag is not None:
                    metrics.LAG.labels(str(p)).set(lag)
        except KafkaException:
            pass


def _dlq_headers(d: DeadLetter) -> list[tuple[str, bytes]]:
    m = d.message
    return [
        ("dlq.reason", d.reason.encode()),
        ("dlq.detail", d.detail[:500].encode()),
        ("dlq.topic", (m.topic() or "").encode()),
        ("dlq.partition", str(m.partition()).encode()),
        ("dlq.offset", str(m.offset()).encode()),
    ]


@dataclass
class _Job:
    """A batch queued on the decider."""

    future: Future[_Prepared]
    revoked: set[int] = field(default_factory=set)  # revoked meanwhile: not to be delivered


@dataclass
class _Prepared:
    """A decided batch waiting for its commit."""

    batch_id: int  # its decisions are staged in the publisher under this id
    batches: list[PartitionBatch]
    started: float
    n_messages: int
    rows: list[SuspiciousRow] = field(default_factory=list)
    decided: dict[int, Decisions] = field(default_factory=dict)
    latest: dict[int, int] = field(default_factory=dict)  # partition -> latest event time decided
    epochs: dict[int, int] = field(default_factory=dict)  # fencing epochs of the rows' partitions

    @property
    def partitions(self) -> list[int]:
        return [pb.partition for pb in self.batches]

    def without(self, partitions: set[int]) -> _Prepared:
        """The batch minus ``partitions`` (revoked: their next owner decides them again)."""
        def keep(d: dict[int, Any]) -> dict[int, Any]:
            return {p: v for p, v in d.items() if p not in partitions}

        return _Prepared(
            batch_id=self.batch_id,
            batches=[pb for pb in self.batches if pb.partition not in partitions],
            started=self.started, n_messages=self.n_messages,
            rows=[r for r in self.rows if r.source_partition not in partitions],
            decided=keep(self.decided), latest=keep(self.latest), epochs=keep(self.epochs),
        )


@dataclass
class _Outcome:
    """What became of a delivered batch."""

    batch: _Prepared
    inserted: int = 0
    lost: list[int] | None = None  # fenced: another worker owns these now
    rewind: list[int] | None = None  # aborted: consume these partitions again
    finished: float = field(default_factory=time.monotonic)
