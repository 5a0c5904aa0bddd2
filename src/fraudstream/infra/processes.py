"""Processes that fraudstream starts itself: pid files and safe termination.

We only ever signal a pid that we recorded *and* whose command line still carries our
marker, so a recycled pid of somebody else's process is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_running(pid: int | None, marker: str) -> bool:
    """True when ``pid`` is alive, not a zombie, and its command line contains ``marker``."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return marker in cmdline(pid)


def terminate(procs: list[tuple[int, str]], timeout_s: float = 30.0) -> None:
    """SIGTERM our ``(pid, marker)`` processes together, wait, then SIGKILL any left."""
    alive = [(p, m) for p, m in procs if is_running(p, m)]
    for pid, _ in alive:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [(p, m) for p, m in alive if is_running(p, m)]
    for pid, _ in alive:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [(p, m) for p, m in alive if is_running(p, m)]


def kill(pid: int | None, marker: str) -> None:
    """SIGKILL one of our processes (fault injection)."""
    if pid is not None and is_running(pid, marker):
        os.kill(pid, signal.SIGKILL)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        data = path.read_bytes()[-20000:].decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


def error_lines(path: Path, limit: int = 20, context: int = 3) -> list[str]:
    """The last ``limit`` ERROR/FATAL records of a log (``[time] LEVEL message`` layout),
    each with up to ``context`` continuation lines (the start of a stack trace): the reason
    a service died is often far above its log's tail, under a dump of its configuration."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    records: list[list[str]] = []
    for i, line in enumerate(lines):
        if line.startswith("[") and ("] ERROR " in line or "] FATAL " in line):
            more = lines[i + 1 : i + 1 + context]
            cut = next((j for j, x in enumerate(more) if x.startswith("[")), len(more))
            records.append([line, *more[:cut]])
    return [x for record in records[-limit:] for x in record]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now (bound with SO_REUSEADDR, as Kafka
    and PostgreSQL bind: a port left in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
