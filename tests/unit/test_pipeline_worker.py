"""Worker behaviour that needs no cluster."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from confluent_kafka import TopicPartition

from fraudstream.contracts.batch import EPOCH_2000_MS, TxBatch
from fraudstream.features.customer import CustomerState
from fraudstream.features.terminal import TerminalState
from fraudstream.pipeline.worker import Worker
from fraudstream.settings import Settings


def test_a_stopping_worker_claims_no_partition() -> None:
    """An assignment that reaches a worker while it stops (inside consumer.close()) is left to
    the group: fetching committed offsets there times out and failed a clean stop."""
    worker = Worker.__new__(Worker)
    worker.stopping = True
    worker.states = {}

    def refuse(_partitions: list[int]) -> dict[int, int]:
        raise AssertionError("a stopping worker fetched committed offsets")

    worker._committed = refuse  # type: ignore[method-assign]
    worker._on_assign(None, [TopicPartition("input", 1)])  # type: ignore[arg-type]
    assert worker.states == {}


class _ReadTheFastPartition(Exception):
    pass


def test_the_terminal_state_is_held_before_the_batch_is_read() -> None:
    """Taking a batch (``take``) runs the terminal state's clock up to the worker's
    fastest partition. A partition just handed to the worker far behind it must keep its
    history through that read: the hold is set before, not after (a 1 -> 3 -> 1 rebalance once
    decided 30-day terminal windows with up to 5 transactions missing)."""
    day = 86_400_000
    t0 = EPOCH_2000_MS + 7000 * day
    worker = Worker.__new__(Worker)
    worker.stopping = False
    worker.terminal = TerminalState(late_margin_ms=2 * day)
    # The history partition 0 needs (it resumes at day 40), observed before it was assigned.
    for d in range(41):
        worker.terminal.observe(_day(d, t0, "slow"))
    worker.states = {0: CustomerState(), 2: CustomerState()}
    worker.progress = {2: t0 + 40 * day}  # partition 0 was just assigned: nothing decided yet
    assert worker.terminal.exact_at(t0 + 40 * day)

    class Reader:
        def take(self, *args: object, **kwargs: object) -> None:
            for d in range(41, 160):  # partition 2's batch, months ahead
                worker.terminal.observe(_day(d, t0, "fast"))
            raise _ReadTheFastPartition

    worker.reader = Reader()  # type: ignore[assignment]
    worker.batch_size, worker.commit_interval_s, worker._last_commit = 100, 0.0, 0.0
    with pytest.raises(_ReadTheFastPartition):
        worker._prepare()
    assert worker.terminal.exact_at(t0 + 40 * day), "history partition 0 needs was expired"


def _day(d: int, t0: int, tag: str) -> TxBatch:
    n = 50
    cents = np.ones(n, dtype=np.int64)
    return TxBatch(
        transaction_id=[f"{tag}{d}-{i}" for i in range(n)], customer_id=["c"] * n,
        terminal_id=[f"T{i % 7}" for i in range(n)],
        time_ms=np.array([t0 + d * 86_400_000 + i for i in range(n)], dtype=np.int64),
        tx_amount=cents / 100.0, amount_cents=cents,
    )


class _Consumer:
    """The group consumer's calls in an assignment callback: assigned, then paused."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []

    def incremental_assign(self, tps: list[TopicPartition]) -> None:
        self.calls.append(("assign", [tp.partition for tp in tps]))

    def pause(self, tps: list[TopicPartition]) -> None:
        self.calls.append(("pause", [tp.partition for tp in tps]))


def test_an_assigned_partition_is_paused_and_read_by_the_global_reader_from_its_commit() -> None:
    """The worker's consumer holds the assignment only: the global reader reads each message
    once for the terminal state and the batches, from the committed offset on."""
    worker, _ = _assigning_worker(TerminalState(), committed=1234, last_time=None)
    shared: list[tuple[int, int]] = []
    worker.reader.share = lambda p, offset=0: shared.append((p, offset))  # type: ignore[method-assign]
    consumer = _Consumer()
    worker._on_assign(consumer, [TopicPartition("input", 0)])  # type: ignore[arg-type]
    assert consumer.calls == [("assign", [0]), ("pause", [0])]
    assert shared == [(0, 1234)] and 0 in worker.states


def _assigning_worker(
    terminal: TerminalState, committed: int, last_time: int | None, first_time: int | None = None
) -> tuple[Worker, list[int]]:
    """A worker owning partition 2 that is handed partition 0 (``committed``: its committed
    offset, ``last_time``: the event time there, ``first_time``: of its first message);
    returns it and the rebuilds it asked for."""
    worker = Worker.__new__(Worker)
    worker.stopping = False
    worker.terminal = terminal
    worker.states = {2: CustomerState()}
    worker.progress = {2: 0}
    worker.epochs = {}
    worker.instance_id = "w"
    worker.settings = Settings()
    worker._jobs = deque()  # nothing being decided

    class Sink:
        def claim(self, topic: str, partition: int, offset: int, instance: str) -> int:
            return 1

    class Reader:
        def share(self, partition: int, from_offset: int = 0) -> None:
            pass

    rebuilds: list[int] = []
    worker.sink = Sink()  # type: ignore[assignment]
    worker.reader = Reader()  # type: ignore[assignment]
    worker._committed = lambda parts: dict.fromkeys(parts, committed)  # type: ignore[method-assign]
    worker._restore = lambda p, c: (CustomerState(), last_time)  # type: ignore[method-assign]
    worker._first_time = lambda p: first_time  # type: ignore[method-assign]
    worker._rebuild_terminal = rebuilds.append  # type: ignore[method-assign]
    return worker, rebuilds


def test_a_partition_with_nothing_committed_rebuilds_a_terminal_state_that_ran_ahead() -> None:
    """Handed a partition nobody committed (decided from its first message), a worker whose
    terminal state already expired its oldest events must rebuild it from the log: it once
    decided such a partition on a truncated history (kill -9 test: every terminal feature off)."""
    day = 86_400_000
    t0 = EPOCH_2000_MS + 7000 * day
    ran_ahead = TerminalState(late_margin_ms=2 * day)
    for d in range(120):
        ran_ahead.observe(_day(d, t0, "x"))
    worker, rebuilds = _assigning_worker(ran_ahead, committed=-1001, last_time=None, first_time=t0)
    worker._on_assign(_Consumer(), [TopicPartition("input", 0)])  # type: ignore[arg-type]
    assert rebuilds == [t0]  # from its first message

    worker, rebuilds = _assigning_worker(ran_ahead, committed=-1001, last_time=None, first_time=None)
    worker._on_assign(_Consumer(), [TopicPartition("input", 0)])  # type: ignore[arg-type]
    assert rebuilds == []  # an empty partition needs no history

    untouched = TerminalState(late_margin_ms=2 * day)  # nothing expired yet: nothing to rebuild
    untouched.observe(_day(0, t0, "y"))
    worker, rebuilds = _assigning_worker(untouched, committed=-1001, last_time=None, first_time=t0)
    worker._on_assign(_Consumer(), [TopicPartition("input", 0)])  # type: ignore[arg-type]
    assert rebuilds == []


def test_a_revoke_waits_for_the_decider_and_drops_the_partition_from_what_it_decided() -> None:
    """The decider takes and decides batches while this thread delivers, so a rebalance
    callback can run while it decides: it must wait for that batch (the decider reads the
    states it changes), drop the batch it has not started (it took nothing yet), and the
    revoked partition's share of every batch decided but not committed goes to its next owner."""
    import threading
    import time
    from concurrent.futures import Future

    from fraudstream.pipeline.decode import PartitionBatch
    from fraudstream.pipeline.worker import _Job, _Prepared

    def prepared(batch_id: int) -> _Prepared:
        return _Prepared(batch_id=batch_id, batches=[PartitionBatch(0), PartitionBatch(1)], started=0.0,
                         n_messages=2, latest={0: 1, 1: 1})

    worker = Worker.__new__(Worker)
    worker.states = {0: CustomerState(), 1: CustomerState()}
    worker.progress, worker.epochs = {}, {}
    worker.reader = type("Reader", (), {"unshare": lambda self, p: None})()  # type: ignore[assignment]
    deciding: Future[_Prepared] = Future()
    assert deciding.set_running_or_notify_cancel()
    queued: Future[_Prepared] = Future()
    worker._jobs, worker._held = deque([_Job(deciding), _Job(queued)]), prepared(1)
    threading.Timer(0.3, lambda: deciding.set_result(prepared(2))).start()
    started = time.monotonic()
    worker._on_revoke(None, [TopicPartition("input", 1)])  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.25 and deciding.done()  # waited for the decider
    assert queued.cancelled() and len(worker._jobs) == 1
    assert worker._held.partitions == [0]
    decided = worker._collect()
    assert decided is not None and decided.partitions == [0] and decided.latest == {0: 1}
    assert worker._collect() is None


def test_a_stopping_worker_delivers_what_was_decided_up_to_the_first_batch_given_up() -> None:
    """The decider takes its batches in order: a batch after one it gave up (stopping) would
    commit offsets past messages nobody decided, so it is dropped (consumed again later)."""
    from concurrent.futures import Future

    from fraudstream.pipeline.decode import PartitionBatch
    from fraudstream.pipeline.worker import _Job, _Prepared

    def prepared(batch_id: int) -> _Prepared:
        return _Prepared(batch_id=batch_id, batches=[PartitionBatch(0)], started=0.0, n_messages=1)

    def done(value: _Prepared | BaseException) -> Future[_Prepared]:
        f: Future[_Prepared] = Future()
        if isinstance(value, BaseException):
            f.set_exception(value)
        else:
            f.set_result(value)
        return f

    worker = Worker.__new__(Worker)
    worker._held = prepared(1)
    worker._jobs = deque([_Job(done(prepared(2))), _Job(done(InterruptedError("stopping"))),
                          _Job(done(prepared(4)))])
    delivered: list[list[int]] = []
    worker._deliver_all = lambda due: delivered.append([b.batch_id for b in due])  # type: ignore[method-assign]
    worker._drain()
    assert delivered == [[1, 2]] and not worker._jobs and worker._held is None
