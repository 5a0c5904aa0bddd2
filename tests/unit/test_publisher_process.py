"""The publisher process's lifecycle: it stops when asked, and never outlives its worker."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

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
