"""The publisher process's lifecycle: it stops when asked, never outlives its worker, and gives
its memory back when idle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from confluent_kafka import KafkaException

from fraudstream.pipeline import publisher
from fraudstream.pipeline.publisher import ProcessPublisher
from fraudstream.pipeline.txn import Topics

_TOPICS = Topics("input", "output", "input.dlq")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_close_ends_the_process() -> None:
    pub = ProcessPublisher({"bootstrap.servers": "127.0.0.1:1"}, _TOPICS, lambda: False)
    pid = pub.pid
    assert pid is not None and _alive(pid)
    pub.close()
    assert pub.pid is None and not _alive(pid)


def test_the_process_dies_with_a_worker_killed_by_sigkill() -> None:
    worker = textwrap.dedent("""
        import os, sys
        from fraudstream.pipeline.publisher import ProcessPublisher
        from fraudstream.pipeline.txn import Topics
        pub = ProcessPublisher({"bootstrap.servers": "127.0.0.1:1"}, Topics("i", "o", "d"), lambda: False)
        print(pub.pid, flush=True)
        sys.stdin.read()  # until killed
    """)
    proc = subprocess.Popen([sys.executable, "-c", worker], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    time.sleep(1.0)  # let it get past its imports
    assert _alive(child)
    os.kill(proc.pid, 9)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_memory_is_trimmed_once_idle_after_a_commit_not_per_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher, "TRIM_IDLE_S", 0.05)
    trims: list[float] = []
    inbox = publisher._Inbox(trim=lambda: trims.append(time.monotonic()))
    for i in range(3):  # back-to-back commits: no trim between them
        inbox.put(("commit", i))
        assert inbox.get() == ("commit", i)
        inbox.dirty = True
    assert trims == []
    inbox.put(None)
    assert inbox.get() is None and trims == []  # a request waiting: taken at once
    waiting = threading.Thread(target=inbox.get)
    started = time.monotonic()
    waiting.start()
    time.sleep(0.3)
    assert len(trims) == 1 and trims[0] - started >= 0.05  # once, after the idle time
    assert not inbox.dirty and waiting.is_alive()  # then waits with no timeout
    inbox.put(("close",))
    waiting.join(1)
    assert not waiting.is_alive() and len(trims) == 1


def test_a_process_killed_before_it_answered_start_is_replaced() -> None:
    """Killed while importing (the worker starts it first thing): ``start`` runs another."""
    pub = ProcessPublisher({"bootstrap.servers": "127.0.0.1:1"}, _TOPICS, lambda: False)
    first = pub.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    try:
        # The new process answers: without a transactional.id its producer refuses at once.
        with pytest.raises(KafkaException, match="transactional.id"):
            pub.start()
        assert pub.pid not in (None, first) and _alive(pub.pid)
    finally:
        pub.close()


def test_a_process_that_died_while_the_worker_was_idle_is_replaced_by_check() -> None:
    pub = ProcessPublisher({"bootstrap.servers": "127.0.0.1:1"}, _TOPICS, lambda: False)
    try:
        first = pub.pid
        pub.check()  # alive: nothing to do
        assert pub.pid == first
        assert first is not None
        os.kill(first, signal.SIGKILL)
        while _alive(first):
            time.sleep(0.01)
        with pytest.raises(KafkaException, match="transactional.id"):
            pub.check()  # started another, which answered
        assert pub.pid not in (None, first) and _alive(pub.pid)
    finally:
        pub.close()


def _nice(stat_path: str) -> int:
    with open(stat_path) as f:
        return int(f.read().rsplit(") ", 1)[1].split()[16])


def test_the_process_and_its_threads_run_below_the_workers_priority() -> None:
    """The worker's deciding thread must not wait in the run queue behind the encoding."""
    pub = ProcessPublisher({"bootstrap.servers": "127.0.0.1:1"}, _TOPICS, lambda: False, nice=7)
    try:
        pid = pub.pid
        assert pid is not None
        expected = min(19, os.nice(0) + 7)
        deadline = time.monotonic() + 30
        # Up and serving: its main, pipe-reading and encoding threads.
        while len(tasks := os.listdir(f"/proc/{pid}/task")) < 3:
            assert time.monotonic() < deadline, "the publisher process did not start its threads"
            time.sleep(0.02)
        assert {t: _nice(f"/proc/{pid}/task/{t}/stat") for t in tasks} == dict.fromkeys(tasks, expected)
    finally:
        pub.close()
