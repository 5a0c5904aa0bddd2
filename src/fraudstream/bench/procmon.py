"""CPU and memory per component, sampled from ``/proc`` in a background thread.

A component is a function returning root pids; with ``tree=True`` their descendants count
too (PostgreSQL: the postmaster and its backends). CPU is user + system time per wall
second (100 = one core); memory is the summed RSS and, where readable, PSS (which does not
count shared pages, e.g. PostgreSQL's shared buffers, more than once).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, user+system ticks) of a process, None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _memory(pid: int, pss: bool = True) -> tuple[int, int]:
    """(RSS, PSS) in bytes; PSS falls back to RSS when smaps_rollup is not readable, and is 0
    without ``pss`` (reading it walks the process's page tables: ~13 ms for a broker's JVM)."""
    try:
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0, 0
    if not pss:
        return rss, 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return rss, int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, rss


def _machine_busy_ticks() -> int:
    """Busy ticks of all CPUs together (everything but idle and iowait), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0
    v = [int(x) for x in fields]
    return sum(v[:8]) - v[3] - v[4]  # user nice system idle iowait irq softirq steal


MACHINE = "machine total (all processes)"


def _descendants(roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


@dataclass
class Component:
    name: str
    pids: Callable[[], list[int]]
    tree: bool = False


@dataclass
class Sample:
    t: float
    phase: str
    cpu: dict[str, float]
    rss: dict[str, int]
    pss: dict[str, int]


@dataclass
class Monitor:
    components: list[Component]
    interval_s: float = 1.0
    #: PSS is read at the first sample of a phase and then every ``pss_every`` samples: for the
    #: brokers alone it cost ~40 ms of CPU a sample, 4 % of a core taken from the system measured.
    pss_every: int = 10
    samples: list[Sample] = field(default_factory=list)
    phase: str = "idle"

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-procmon", daemon=True)
        self._ticks: dict[str, dict[int, int]] = {}
        self._busy: int = 0  # machine busy ticks at the previous sample
        self._pss_phase: str | None = None  # the phase of the last sample with PSS
        self._since_pss = 0

    def start(self) -> Monitor:
        self._take(record=False)
        self._last = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._take(record=True)

    def _take(self, record: bool) -> None:
        now = time.monotonic()
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        pss: dict[str, int] = {}
        with_pss = self.phase != self._pss_phase or self._since_pss + 1 >= self.pss_every
        if record and with_pss:
            self._pss_phase, self._since_pss = self.phase, 0
        elif record:
            self._since_pss += 1
        for comp in self.components:
            try:
                roots = [p for p in comp.pids() if p]
            except Exception:  # noqa: BLE001 - a component that cannot be found is skipped
                roots = []
            pids = _descendants(roots) if comp.tree and roots else roots
            before = self._ticks.get(comp.name, {})
            ticks: dict[int, int] = {}
            used = 0
            r = p = 0
            for pid in pids:
                st = _stat(pid)
                if st is None:
                    continue
                ticks[pid] = st[1]
                used += st[1] - before.get(pid, st[1] if not record else 0)
                m = _memory(pid, with_pss)
                r, p = r + m[0], p + m[1]
            self._ticks[comp.name] = ticks
            if pids and ticks:
                elapsed = now - getattr(self, "_last", now)
                cpu[comp.name] = 100.0 * used / CLK_TCK / elapsed if elapsed > 0 else 0.0
                rss[comp.name] = r
                if with_pss:
                    pss[comp.name] = p
        busy = _machine_busy_ticks()
        elapsed = now - getattr(self, "_last", now)
        if record and elapsed > 0:
            cpu[MACHINE] = 100.0 * (busy - self._busy) / CLK_TCK / elapsed
            rss[MACHINE] = pss[MACHINE] = 0
        self._busy = busy
        if record:
            self.samples.append(Sample(time.time(), self.phase, cpu, rss, pss))
        self._last = now

    def summary(self, phase: str) -> dict[str, dict[str, float]]:
        """Per component over one phase: mean/max CPU % and max RSS/PSS in MB."""
        rows = [s for s in self.samples if s.phase == phase]
        names = sorted({n for s in rows for n in s.cpu})
        out: dict[str, dict[str, float]] = {}
        for n in names:
            cpu = [s.cpu[n] for s in rows if n in s.cpu]
            out[n] = {
                "cpu_mean_pct": round(sum(cpu) / len(cpu), 1),
                "cpu_max_pct": round(max(cpu), 1),
                "rss_max_mb": round(max(s.rss[n] for s in rows if n in s.rss) / 2**20, 1),
                "pss_max_mb": round(max((s.pss[n] for s in rows if n in s.pss), default=0) / 2**20, 1),
                "samples": len(cpu),
            }
        return out
