"""The publisher: a worker's Kafka transactions, in a process of their own.

Why a process: a worker is one Python process, and CPython runs one thread of it at a time.
Encoding the decisions as JSON and handing them to librdkafka took two fifths of that time
(measured with py-spy at 36,000 tx/s), on the same core that validates and decides. The
worker's main thread already waits for each commit while the decider thread works on the
next batch (see ``Worker._step``); now that wait is for this process, which encodes,
produces and commits on the other core, so the decider has the worker's interpreter to itself.

Two messages per batch: the decider *stages* its decisions as soon as they are decided, and
the process encodes them (on a thread of its own, up to ``Staging.MAX_ENCODED`` batches ahead
of the commits) while the previous batch's commit is still going on; the worker's main
thread then asks it to *commit* the batch (after writing its PostgreSQL rows), and only
producing and the transaction protocol are left to do.
A staged batch that is never committed (rewound, revoked) is dropped by the next commit.

What crosses the pipe is small: per partition a msgpack blob (``publish.pack``: the decoded
transactions, scores, codes and the feature matrix as raw float64), the dead letters, the
offsets and the consumer group metadata (bytes), which ``send_offsets_to_transaction`` needs
for the broker to fence a zombie worker. The Kafka transaction and every guarantee are those of
:class:`~fraudstream.pipeline.txn.TxnPublisher`, which this process runs unchanged (and which
``InlinePublisher`` runs in the worker's own process).

Lifecycle: the worker starts the process, stops it on close, and starts another if it dies
(the batch is then aborted and redone: the new producer has the same transactional id, so
its ``init_transactions`` aborts whatever the dead one left open). The process dies with the
worker (``PR_SET_PDEATHSIG``, and the pipe's end-of-file), ignores SIGINT and SIGTERM (a
terminal's Ctrl+C reaches the whole process group: the worker decides when it stops), and
takes SIGUSR1 from the worker as "stopping": retriable errors are then raised, not retried.
It runs at a lower CPU priority than the worker (``FRAUDSTREAM_PUBLISHER_NICE``, see
``_lower_priority``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import structlog
from confluent_kafka import KafkaError, KafkaException

from fraudstream.pipeline.publish import encode_outputs, split_rows, unpack
from fraudstream.pipeline.txn import DeadRecord, Topics, TxnPublisher

log = structlog.get_logger(__name__)

GC_YOUNG_THRESHOLD = 1_000_000

#: How often the worker, waiting for a reply, looks at its stop flag.
_POLL_S = 0.2
#: Without a commit for this long, the publisher gives its freed memory back (see ``_Inbox``).
TRIM_IDLE_S = 1.0
#: Processes started in a row that died before they answered ``start``: then the worker stops.
START_ATTEMPTS = 3


class Publisher(Protocol):
    @property
    def aborts(self) -> int: ...

    @property
    def retries(self) -> int: ...

    def start(self) -> None: ...

    def check(self) -> None:
        """Between batches: make sure the Kafka transactions can go on (see ProcessPublisher)."""

    def stage(self, batch: int, payloads: dict[int, bytes]) -> None:
        """A decided batch: partition -> ``publish.pack`` blob (called by the decider)."""

    def commit(self, batch: int, partitions: list[int], dead: list[DeadRecord],
               offsets: list[tuple[int, int]], group_metadata: object) -> bool:
        """Publish the staged decisions of ``partitions`` (the batch minus revoked ones), the
        dead letters and the offsets in one Kafka transaction. False: aborted."""

    def close(self) -> None: ...


_Messages = list[tuple[bytes, bytes]]  # output (key, value)


class Staging:
    """Encoded ``output`` messages of staged batches, per partition, until committed.

    In the publisher process batches are encoded by a thread of their own (:meth:`encode_queued`)
    so that the pipe keeps being read: a commit request must not wait behind the encoding
    of the next batch. That thread encodes :data:`CHUNK_ROWS` transactions at a time and
    stands aside while a commit hands its messages to librdkafka (:meth:`producing`), since
    both need the process's interpreter and the commit is what the worker is waiting for.
    """

    #: Staged batches kept at most: the one being delivered, the held one, the worker's
    #: decided-ahead ones (``worker.DECIDE_AHEAD``), plus slack.
    MAX_BATCHES = 5
    #: Batches the encoding thread keeps encoded ahead of the commits: the next one and the
    #: one after (one was slower: a batch staged before the previous commit took its own
    #: waited to be encoded until then, and the commit then waited for it). The others wait
    #: as their msgpack blobs, about a quarter of the JSON's size.
    MAX_ENCODED = 2
    CHUNK_ROWS = 1000

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._batches: dict[int, dict[int, _Messages]] = {}
        self._queued: deque[tuple[int, dict[int, bytes]]] = deque()  # not encoded yet
        self._asked = 0  # the latest batch a commit asked for (``take``)
        self._free = threading.Event()  # no commit is producing
        self._free.set()

    def stage(self, batch: int, payloads: dict[int, bytes]) -> None:
        """Encode now (in the caller's thread)."""
        self._store(batch, self._encode(payloads))

    def queue(self, batch: int, payloads: dict[int, bytes]) -> None:
        """For the :meth:`encode_queued` thread."""
        with self._cond:
            self._queued.append((batch, payloads))
            self._cond.notify_all()

    def encode_queued(self) -> None:
        """The encoding thread's loop (a daemon: it ends with the process)."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queued) and self._ahead() < self.MAX_ENCODED)
                batch, payloads = self._queued[0]
            encoded = self._encode(payloads, pausable=True)
            with self._cond:
                self._queued.popleft()
                self._store(batch, encoded)
                self._cond.notify_all()

    @contextlib.contextmanager
    def producing(self) -> Iterator[Callable[[], None]]:
        """Around a commit: the encoding thread pauses until the callback it yields is
        called (every message produced) or the block ends."""
        self._free.clear()
        try:
            yield self._free.set
        finally:
            self._free.set()

    def _encode(self, payloads: dict[int, bytes], pausable: bool = False) -> dict[int, _Messages]:
        encoded: dict[int, _Messages] = {}
        for p, blob in payloads.items():
            messages = encoded[p] = []
            for chunk in split_rows(unpack(blob), self.CHUNK_ROWS):
                if pausable:
                    self._free.wait()
                messages.extend(encode_outputs(chunk))
        return encoded

    def _ahead(self) -> int:
        """Encoded batches a commit may still ask for (not before the latest one asked)."""
        return sum(1 for b in self._batches if b >= self._asked)

    def _store(self, batch: int, encoded: dict[int, _Messages]) -> None:
        with self._cond:
            self._batches[batch] = encoded
            for old in sorted(self._batches)[: -self.MAX_BATCHES]:
                del self._batches[old]

    def take(self, batch: int, partitions: list[int]) -> _Messages | None:
        """The messages of ``partitions`` of ``batch`` (None: not staged here, e.g. staged to
        a publisher process that died since), once every batch up to it queued for encoding
        is encoded; forgets that batch and every earlier one."""
        with self._cond:
            # Batches before it, dropped by the worker (never committed), must not hold the
            # encoding thread back from this one (see MAX_ENCODED and _ahead).
            self._asked = max(self._asked, batch)
            self._cond.notify_all()
            self._cond.wait_for(lambda: not any(b <= batch for b, _ in self._queued))
            encoded = self._batches.get(batch)
            for old in [b for b in self._batches if b <= batch]:  # encoded meanwhile too
                del self._batches[old]
            self._cond.notify_all()
        if encoded is None:
            return None
        return [m for p in partitions for m in encoded.get(p, ())]


class InlinePublisher:
    """:class:`TxnPublisher` in the worker's own process (``FRAUDSTREAM_PUBLISHER_PROCESS=false``)."""

    def __init__(self, config: dict[str, Any], topics: Topics, should_stop: Callable[[], bool]) -> None:
        self.txn = TxnPublisher(config, topics, should_stop)
        self.staging = Staging()

    @property
    def aborts(self) -> int:
        return self.txn.aborts

    @property
    def retries(self) -> int:
        return self.txn.retries

    def start(self) -> None:
        self.txn.init()

    def check(self) -> None:
        pass  # nothing runs apart from the worker

    def stage(self, batch: int, payloads: dict[int, bytes]) -> None:
        self.staging.stage(batch, payloads)

    def commit(self, batch: int, partitions: list[int], dead: list[DeadRecord],
               offsets: list[tuple[int, int]], group_metadata: object) -> bool:
        return _commit(self.txn, self.staging, batch, partitions, dead, offsets, group_metadata)

    def close(self) -> None:
        self.txn.close()


def _commit(txn: TxnPublisher, staging: Staging, batch: int, partitions: list[int],
            dead: list[DeadRecord], offsets: list[tuple[int, int]], group_metadata: object) -> bool:
    outputs = staging.take(batch, partitions)
    if outputs is None:
        log.warning("publisher.batch_not_staged", batch=batch)
        txn.aborts += 1
        return False  # redone: decided again, staged again
    with staging.producing() as produced:
        return txn.commit(outputs, dead, offsets, group_metadata, produced)


class PublisherDied(Exception):
    """The publisher process ended without answering."""


class _Sender:
    """Writes to the pipe on a thread of its own, in order. A staged batch is megabytes,
    written as fast as the publisher reads it, which it does between the pieces its other
    threads encode and produce: the decider would wait for that (~2 us a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="publisher-send", daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        if self.error is not None:
            raise PublisherDied(f"publisher process gone: {self.error}")
        self._queue.put(data)

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._conn.send_bytes(data)
                except OSError as exc:
                    self.error = exc

    def stop(self, timeout_s: float) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)


class ProcessPublisher:
    """The worker's handle on its publisher process (see the module docstring)."""

    def __init__(self, config: dict[str, Any], topics: Topics, should_stop: Callable[[], bool],
                 log_level: str = "INFO", log_json: bool | None = None, nice: int = 0) -> None:
        self._start_msg = ("start", config, topics, log_level, log_json)
        self._nice = nice
        self.should_stop = should_stop
        self.aborts = 0
        self.retries = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._conn: Connection | None = None
        self._sender: _Sender | None = None
        self._signalled = False
        self._spawn()  # imports while the worker sets up; ``start`` waits for it

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        # The package wherever the worker found it (an installed one, or a source tree).
        source = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [source, *filter(None, [os.environ.get("PYTHONPATH")])])}
        # Its threads (pipe, encoding, commit, librdkafka's) would each get a malloc arena of
        # their own, whose freed memory the others cannot reuse (as in ``fraudstream detect``).
        env.setdefault("MALLOC_ARENA_MAX", "2")
        # A staged batch arrives as megabyte buffers: mapped and unmapped on their own rather
        # than left in the heap (glibc's default threshold grows to 32 MB after such frees).
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
        with theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "fraudstream.pipeline.publisher", str(theirs.fileno()),
                 str(os.getpid()), str(self._nice)],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env,
            )
        self._sock = ours  # its shutdown wakes a blocked send (see _stop_process)
        self._conn = Connection(os.dup(ours.fileno()))
        self._sender = _Sender(self._conn)
        self._signalled = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Initialise its producer's transactions. A process killed before it answers (while
        importing, or in ``init_transactions``) is replaced; one that keeps dying
        (``START_ATTEMPTS`` in a row) is raised: the worker cannot publish."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._call(self._start_msg)
                return
            except PublisherDied as exc:
                if attempt == START_ATTEMPTS:
                    raise
                log.warning("publisher.died", error=str(exc), starting=True)
                self._restart()

    def check(self) -> None:
        """Replace a process that died while the worker had nothing to commit (an idle worker
        would otherwise only find out at its next batch, and run without a publisher
        meanwhile). Only the worker's main thread calls this, between its calls."""
        proc = self._proc
        if proc is None or proc.poll() is None or self.should_stop():
            return
        log.warning("publisher.died", error=f"publisher process exited ({proc.returncode})", idle=True)
        self._restart()
        self.start()

    def _restart(self) -> None:
        self._stop_process()
        self._spawn()

    def stage(self, batch: int, payloads: dict[int, bytes]) -> None:
        try:
            self._send(("stage", batch, payloads))
        except PublisherDied as exc:  # its commit finds it missing and is redone
            log.warning("publisher.stage_failed", error=str(exc))

    def commit(self, batch: int, partitions: list[int], dead: list[DeadRecord],
               offsets: list[tuple[int, int]], group_metadata: object) -> bool:
        if not offsets:
            return True
        try:
            return bool(self._call(("commit", batch, partitions, dead, offsets, group_metadata)))
        except PublisherDied as exc:
            # Whatever it left open is aborted by the next one's init_transactions.
            log.warning("publisher.died", error=str(exc))
            self.aborts += 1
            self._restart()
            self.start()
            return False

    def close(self) -> None:
        try:
            if self._conn is not None and self._proc is not None and self._proc.poll() is None:
                self._call(("close",))
        except (PublisherDied, KafkaException) as exc:
            log.warning("publisher.close", error=str(exc))
        finally:
            self._stop_process()

    def _stop_process(self) -> None:
        if self._sender is not None:
            self._sender.stop(1.0)
            self._sender = None
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None

    def _send(self, msg: tuple[Any, ...]) -> None:
        sender = self._sender
        if sender is None:
            raise PublisherDied("not running")
        sender.put(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))

    def _call(self, msg: tuple[Any, ...]) -> Any:
        """Send ``msg`` and wait for the reply; tells the process when the worker is stopping.
        Only the worker's main thread calls this (replies are not matched to requests)."""
        self._send(msg)
        conn, proc = self._conn, self._proc
        if conn is None or proc is None:
            raise PublisherDied("not running")
        try:
            while not conn.poll(_POLL_S):
                if self.should_stop() and not self._signalled and proc.poll() is None:
                    os.kill(proc.pid, signal.SIGUSR1)
                    self._signalled = True
            reply = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError) as exc:
            raise PublisherDied(f"publisher process exited ({proc.poll()}): {exc}") from exc
        kind, value, aborts, retries = reply
        self.aborts += aborts
        self.retries += retries
        if kind == "error":
            code, reason, fatal, retriable, abortable = value
            raise KafkaException(KafkaError(code, reason, fatal=fatal, retriable=retriable,
                                            txn_requires_abort=abortable))
        if kind == "crash":
            raise RuntimeError(f"publisher process failed:\n{value}")
        return value


# ---- the process ----------------------------------------------------------------------------
@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, loaded once and only in the publisher process (finding it runs ldconfig)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the worker dies, even by SIGKILL (Linux; elsewhere the pipe's EOF does)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "prctl"):
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(0)


def _lower_priority(nice: int) -> None:
    """Run ``nice`` below the worker's priority (threads started later inherit it).

    With every core busy, this process's encoding took the CPU from the worker's deciding
    thread, which then waited in the run queue a third of the time, though what there is to
    publish is what the worker decides. Quick 1M bench (session 22, alternating): 40,788 and
    42,597 tx/s at the same priority, 45,019-55,807 at +5 to +19 (``settings.publisher_nice``).
    Every thread is set: on Linux a nice value is a thread's, and imports already started
    some (numpy's BLAS pool)."""
    if nice <= 0:
        return
    target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no procfs: this thread (and those it starts) only
        threads = [0]
    for tid in threads:
        with contextlib.suppress(OSError):  # a thread that has ended since
            os.setpriority(os.PRIO_PROCESS, tid, target)


def _trim() -> None:
    """Give the memory freed by committed batches back to the system (glibc keeps it)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _receive(conn: Connection, staging: Staging, inbox: _Inbox) -> None:
    """Read the pipe: staged batches to the encoding thread, the rest to the main thread."""
    try:
        while True:
            msg = pickle.loads(conn.recv_bytes())
            if msg[0] == "stage":
                staging.queue(msg[1], msg[2])
            else:
                inbox.put(msg)
    except (EOFError, OSError):
        pass  # the worker is gone
    except Exception:  # noqa: BLE001 - a bug: the next commit reports it
        inbox.put(("crashed", traceback.format_exc()))
        return
    inbox.put(None)


class _Inbox:
    """The main thread's queue of requests, which trims the process's memory (:func:`_trim`)
    once it has waited :data:`TRIM_IDLE_S` for one since the last commit: when traffic stops,
    not after every commit. Trimming after each commit gave back the pages of the batch just
    produced, which the next batch's encoding faulted in again, zeroed (~0.8 page faults a
    transaction; page faults and zeroing ~3 % of perf's samples of worker and publisher),
    for a peak RSS no lower."""

    def __init__(self, trim: Callable[[], None] = _trim) -> None:
        self.queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self.put = self.queue.put
        self.trim = trim
        self.dirty = False  # committed since the last trim

    def get(self) -> tuple[Any, ...] | None:
        while self.dirty:
            try:
                return self.queue.get(timeout=TRIM_IDLE_S)
            except queue.Empty:
                self.trim()
                self.dirty = False
        return self.queue.get()


def _serve(conn: Connection, stopping: threading.Event) -> None:
    from fraudstream.observability import configure_logging

    staging = Staging()
    inbox = _Inbox()
    threading.Thread(target=staging.encode_queued, name="encode", daemon=True).start()
    threading.Thread(target=_receive, args=(conn, staging, inbox), name="receive", daemon=True).start()
    txn: TxnPublisher | None = None
    while (msg := inbox.get()) is not None:
        kind = msg[0]
        try:
            if kind == "start":
                _, config, topics, level, json_logs = msg
                configure_logging(level, json_logs)
                txn = TxnPublisher(config, topics, should_stop=stopping.is_set)
                txn.init()
                value: object = None
            elif kind == "commit":
                assert txn is not None
                value = _commit(txn, staging, *msg[1:])
                inbox.dirty = True
            elif kind == "crashed":
                raise RuntimeError(msg[1])
            else:  # close
                if txn is not None:
                    txn.close()
                value = None
            reply: tuple[Any, ...] = ("ok", value)
        except KafkaException as exc:
            err = exc.args[0]
            reply = ("error", (err.code(), err.str(), err.fatal(), err.retriable(), err.txn_requires_abort()))
        except Exception:  # noqa: BLE001 - a bug: the worker raises it (a respawn would loop)
            reply = ("crash", traceback.format_exc())
        counts = (txn.aborts, txn.retries) if txn is not None else (0, 0)
        if txn is not None:
            txn.aborts = txn.retries = 0  # reported: the worker keeps the totals
        conn.send_bytes(pickle.dumps((*reply, *counts), protocol=pickle.HIGHEST_PROTOCOL))
        if kind == "close":
            return


def main(argv: list[str]) -> None:
    fd, parent, nice = int(argv[1]), int(argv[2]), int(argv[3])
    _die_with_parent(parent)
    _lower_priority(nice)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stopping = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: stopping.set())
    # The pipe is read a socket buffer at a time, each needing the interpreter, which the
    # encoding thread holds meanwhile: with the default 5 ms a staged batch (megabytes) took
    # up to ~0.2 s to read, and the commit request queued behind it waited as long.
    sys.setswitchinterval(0.0005)
    # Each batch allocates a tracked tuple and list per message, which the collector's young
    # generation traversed every 700 allocations: 6 % of the process's samples (py-spy, 40k tx/s).
    # Nothing here forms cycles but the odd exception, which a collection every million
    # allocations still frees (as in the worker, see worker.GC_YOUNG_THRESHOLD).
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    conn = Connection(fd)
    try:
        _serve(conn, stopping)
    finally:
        conn.close()


if __name__ == "__main__":
    main(sys.argv)
