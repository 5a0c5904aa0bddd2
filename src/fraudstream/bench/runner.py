"""The bench's experiments. Every loop is bounded in count and in time and stops by itself."""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fraudstream.bench.procmon import Component, Monitor
from fraudstream.bench.progress import DETECTOR_GROUP, FLOOR_GROUP, Progress
from fraudstream.bench.sandbox import Sandbox
from fraudstream.infra.processes import read_pid
from fraudstream.pipeline.consume import consume_ready
from fraudstream.settings import Settings

TX_PER_CUSTOMER_DAY = 1.9  # the handbook simulator's average
#: Event time from a transaction to its label when event time is the data's (the handbook's delay).
LABEL_DELAY_EVENT_S = 7 * 86_400.0
#: How often the throughput phase asks for the committed offsets.
PROBE_EVERY_S = 0.2


@dataclass
class BenchConfig:
    preload: int = 300_000
    workers: list[int] = field(default_factory=lambda: [1, 2])
    rates: list[float] = field(default_factory=lambda: [1000.0, 5000.0, 20000.0])
    duration_s: float = 25.0
    live_rate: float = 50_000.0
    live_seconds: float = 40.0
    naive_seconds: float = 30.0
    warmup_fraction: float = 0.1
    max_phase_s: float = 300.0
    customers: int = 5000
    terminals: int = 10000
    label_delay_s: float = 60.0
    floor: bool = True  # also measure Kafka alone (``bench.floor``) in the detector's place
    keep: bool = False

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(
            preload=20_000,
            workers=[1],
            rates=[1000.0],
            duration_s=5.0,
            live_rate=20_000.0,
            live_seconds=8.0,
            naive_seconds=5.0,
            max_phase_s=90.0,
            customers=2000,
            terminals=4000,
        )


def live_speedup(rate: float, customers: int) -> float:
    """How many times faster than wall time event time must run for ``customers`` paying
    ``TX_PER_CUSTOMER_DAY`` each in event time to make ``rate`` transactions a wall second."""
    return max(1.0, rate / (customers * TX_PER_CUSTOMER_DAY / 86_400.0))


#: Starts the ``i``-th process under test in a sandbox: a detector, or Kafka alone (the floor).
Starter = Callable[[Sandbox, int], subprocess.Popen]


def detector(sb: Sandbox, index: int) -> subprocess.Popen:
    return sb.start_detector(index)


def kafka_alone(sb: Sandbox, index: int) -> subprocess.Popen:
    return sb.spawn(f"{sb.database}-floor-{index}", "fraudstream.bench.floor")


# ---- the data ---------------------------------------------------------------------------
def make_frame(n: int, customers: int, terminals: int) -> pd.DataFrame:
    """At least ``n`` handbook transactions (event-time ordered), cut to ``n``."""
    from fraudstream.generator.command import to_contract_frame
    from fraudstream.generator.handbook import generate_dataset

    days = max(2, math.ceil(n / (customers * TX_PER_CUSTOMER_DAY) * 1.1) + 1)
    _, _, tx = generate_dataset(customers, terminals, days, "2018-04-01")
    frame = to_contract_frame(tx).sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    return frame.iloc[:n].reset_index(drop=True)


# ---- components to sample ---------------------------------------------------------------
class Components:
    """The pids of each component; the sandbox's children change as phases start and stop."""

    def __init__(self, base: Settings) -> None:
        self.base = base
        self.detectors: list[int] = []
        self.producer: list[int] = []
        self.naive: list[int] = []

    def brokers(self) -> list[int]:
        if self.base.kafka_bootstrap_servers and not _is_local(self.base):
            return []
        from fraudstream.infra.kafka import KafkaCluster

        return [p for n in KafkaCluster(self.base).nodes if (p := read_pid(n.pid_file))]

    def postgres(self) -> list[int]:
        from fraudstream.infra.postgres import LocalPostgres

        f = LocalPostgres(self.base).data_dir / "postmaster.pid"
        try:
            return [int(f.read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            return []

    def monitor(self) -> Monitor:
        import os

        return Monitor(
            [
                Component("kafka brokers (3 JVMs)", self.brokers),
                Component("postgres", self.postgres, tree=True),
                Component("detectors", lambda: list(self.detectors), tree=True),  # with their publishers
                Component("producer", lambda: list(self.producer)),
                Component("naive baseline", lambda: list(self.naive)),
                Component("bench (its readers, probe and monitor)", lambda: [os.getpid()]),
            ]
        )


def _is_local(base: Settings) -> bool:
    own = ",".join(f"127.0.0.1:{base.kafka_base_port + i}" for i in range(base.kafka_nodes))
    return base.kafka_bootstrap_servers in ("", own) or base.kafka_bootstrap_servers.startswith(
        f"127.0.0.1:{base.kafka_base_port}"
    )


# ---- reading decisions ------------------------------------------------------------------
def _output_consumer(settings: Settings, with_dlq: bool = False) -> Consumer:
    c = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": "bench-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
            "log_level": 3,
        }
    )
    topics = [settings.topic_output] + ([settings.topic_dlq] if with_dlq else [])
    parts = []
    for topic in topics:
        md = c.list_topics(topic, timeout=30)
        parts += [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
    c.assign(parts)
    return c


def _count(consumer: Consumer, dlq_topic: str) -> tuple[int, int]:
    """(decisions, dead letters) in one consume call."""
    decided = dead = 0
    for m in consumer.consume(10000, timeout=0.2):
        if m.error() is None:
            if m.topic() == dlq_topic:
                dead += 1
            else:
                decided += 1
    return decided, dead


class _TxTime(msgspec.Struct):
    tx_datetime: datetime


def _loadgen(
    sb: Sandbox,
    comps: Components,
    name: str,
    frame_path: Path,
    mode: str,
    *,
    rate: float = 0.0,
    count: int | None = None,
    label_delay_s: float | None = None,
    speedup: float = 1.0,
):
    summary = sb.log_dir / f"{sb.database}-{name}.json"
    args = [
        "fraudstream.bench.loadgen",
        "--frame",
        str(frame_path),
        "--mode",
        mode,
        "--rate",
        str(rate),
        "--summary",
        str(summary),
    ]
    if count is not None:
        args += ["--count", str(count)]
    if label_delay_s is not None:
        args += ["--label-delay", str(label_delay_s)]
    if speedup != 1.0:
        args += ["--speedup", str(speedup)]
    proc = sb.spawn(f"{sb.database}-{name}", *args)
    comps.producer = [proc.pid]
    return proc, summary


def _wait(proc, timeout_s: float) -> int:
    try:
        return proc.wait(timeout_s)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: stop it ourselves
        proc.terminate()
        return proc.wait(30)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ---- 1. throughput ----------------------------------------------------------------------
def run_throughput(
    base: Settings,
    cfg: BenchConfig,
    frame_path: Path,
    n: int,
    workers: int,
    comps: Components,
    mon: Monitor,
    log_dir: Path,
    keep_sandbox: bool = False,
    start: Starter = detector,
    label: str = "throughput",
    group: str = DETECTOR_GROUP,
) -> tuple[dict, Sandbox | None]:
    """Preload ``n`` transactions, then ``workers`` detectors (or what ``start`` starts, whose
    consumer group is ``group``); transactions/s after a warm-up.

    The timed window follows the group's committed ``input`` offsets (see
    :mod:`~fraudstream.bench.progress`: they move in the same Kafka transactions as the
    decisions); then ``output`` and the dead-letter topic are read back and counted."""
    sb = Sandbox.create(base, log_dir)
    phase = f"{label} W={workers}"
    try:
        mon.phase = f"preload W={workers}"
        proc, summary = _loadgen(
            sb, comps, "preload", frame_path, "replay", count=n, label_delay_s=LABEL_DELAY_EVENT_S
        )
        _wait(proc, cfg.max_phase_s)
        comps.producer = []
        pre = _read_json(summary)
        probe = Progress(sb.settings, group, sb.settings.topic_input)
        total = sum(probe.ends().values())  # the preloaded messages, good and bad
        mon.phase = phase
        started = time.monotonic()
        procs = [start(sb, i) for i in range(workers)]
        comps.detectors = [p.pid for p in procs]
        try:
            timeline = _follow(probe, total, procs, started, started + cfg.max_phase_s)
        finally:
            probe.close()
        sb.stop(procs)
        comps.detectors = []
        # Then every decision is read back (outside the timed window): each transaction once.
        mon.phase = f"read back W={workers}"
        count, dead = _read_back(sb.settings, n)
        result = {
            "workers": workers,
            "preloaded": n,
            "preload_rate_tx_s": round(pre.get("rate", 0.0)),
            "decisions": count,
            "dead_letters": dead,
            "exactly_once_count_ok": count + dead == n,
            "postgres_rows": sb.count_rows(),
            **_rate(timeline, total, cfg.warmup_fraction),
            "timeline": _thin(timeline),
            "resources": mon.summary(phase),
        }
        return result, (sb if keep_sandbox else None)
    finally:
        comps.detectors, comps.producer = [], []
        if not keep_sandbox:
            sb.stop()
            if not cfg.keep:
                sb.destroy(base)


def _follow(
    probe: Progress, total: int, procs: list[subprocess.Popen], started: float, deadline: float
) -> list[tuple[float, int]]:
    """(seconds since ``started``, input messages committed) every ``PROBE_EVERY_S``, until all
    ``total`` are, the deadline, a stall of 20 s after the first, or no process left."""
    timeline: list[tuple[float, int]] = []
    done, last_new = 0, started
    while done < total and time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(PROBE_EVERY_S)
        try:
            now_done = sum(probe.committed().values())
        except KafkaException:  # the coordinator moving: ask again at the next tick
            continue
        now = time.monotonic()
        if now_done > done:
            done, last_new = now_done, now
        elif done and now - last_new > 20:
            break
        timeline.append((now - started, done))
    return timeline


def _read_back(settings: Settings, n: int, stall_s: float = 20.0) -> tuple[int, int]:
    """(decisions, dead letters) visible to a ``read_committed`` reader, read until there are
    ``n`` plus one more second (anything beyond ``n`` would be a duplicate) or nothing comes
    for ``stall_s``."""
    consumer = _output_consumer(settings, with_dlq=True)
    try:
        count = dead = 0
        last_new = time.monotonic()
        until = math.inf
        while time.monotonic() < until and time.monotonic() - last_new < stall_s:
            got, gone = _count(consumer, settings.topic_dlq)
            count, dead = count + got, dead + gone
            if got or gone:
                last_new = time.monotonic()
            if count + dead >= n and until == math.inf:
                until = time.monotonic() + 1.0
        return count, dead
    finally:
        consumer.close()


def _rate(timeline: list[tuple[float, int]], n: int, warmup_fraction: float) -> dict:
    """Steady rate: from the first point past the warm-up to the last new decision.

    Counted from committed offsets, the timeline moves a whole Kafka transaction at a time;
    when everything came with the first step past the warm-up (a preload of one batch: the
    quick bench), there is no window after it, and the rate is taken over the whole phase
    (start-up included, ``whole_phase``)."""
    if not timeline or timeline[-1][1] == 0:
        return {"throughput_tx_s": 0.0, "first_decision_s": None, "completed_s": None}
    first = next(t for t, c in timeline if c > 0)
    last_count = timeline[-1][1]
    t_last = next(t for t, c in timeline if c == last_count)
    warm = next(((t, c) for t, c in timeline if c >= warmup_fraction * n), timeline[0])
    whole = warm[1] == last_count
    if whole:
        warm = (0.0, 0)
    span = t_last - warm[0]
    rate = (last_count - warm[1]) / span if span > 0 else 0.0
    return {
        "whole_phase": whole,
        "throughput_tx_s": round(rate, 1),
        "first_decision_s": round(first, 2),
        "completed_s": round(t_last, 2),
        "overall_tx_s": round(last_count / t_last, 1) if t_last else 0.0,
        "warmup_decisions": warm[1],
        "measured_s": round(span, 1),  # the window the steady rate is measured over
    }


def _thin(timeline: list[tuple[float, int]], points: int = 200) -> list[list[float]]:
    if len(timeline) <= points:
        return [[round(t, 3), c] for t, c in timeline]
    step = len(timeline) / points
    picked = [timeline[int(i * step)] for i in range(points)] + [timeline[-1]]
    return [[round(t, 3), c] for t, c in picked]


# ---- 1b. throughput while a live producer sends -----------------------------------------
def run_live_throughput(
    base: Settings,
    cfg: BenchConfig,
    frame_path: Path,
    workers: int,
    comps: Components,
    mon: Monitor,
    log_dir: Path,
) -> dict:
    """Detectors running, a live producer offering ``live_rate`` tx/s.

    Event time runs :func:`live_speedup` times faster than wall time (ending now), so that each
    customer pays as often in event time as in the preloaded data (~2 a day): with event time =
    now, 5,000 customers at 50,000 tx/s each paid 10 times a second, the velocity rules flagged
    about half of it and PostgreSQL's writes bounded the phase (10,341 tx/s)."""
    sb = Sandbox.create(base, log_dir)
    phase = f"live throughput W={workers}"
    speedup = live_speedup(cfg.live_rate, cfg.customers)
    try:
        mon.phase = phase
        consumer = _output_consumer(sb.settings)
        procs = [sb.start_detector(i) for i in range(workers)]
        comps.detectors = [p.pid for p in procs]
        count_max = int(cfg.live_rate * cfg.live_seconds)
        started = time.monotonic()
        proc, summary = _loadgen(
            sb,
            comps,
            "live",
            frame_path,
            "live",
            rate=cfg.live_rate,
            count=count_max,
            label_delay_s=LABEL_DELAY_EVENT_S,
            speedup=speedup,
        )
        timeline: list[tuple[float, int]] = []
        count = 0
        deadline = started + cfg.live_seconds + 30
        while proc.poll() is None and time.monotonic() < deadline:
            count += sum(1 for m in consumer.consume(10000, timeout=0.2) if m.error() is None)
            timeline.append((time.monotonic() - started, count))
        if proc.poll() is None:
            proc.terminate()
        proc.wait(60)
        comps.producer = []
        sent = _read_json(summary)
        # Drain what is still being decided (bounded): a slow start must not read as zero.
        drain_until = time.monotonic() + 30
        while count < sent.get("transactions", 0) and time.monotonic() < drain_until:
            count += sum(1 for m in consumer.consume(10000, timeout=0.2) if m.error() is None)
            timeline.append((time.monotonic() - started, count))
        consumer.close()
        sb.stop(procs)
        comps.detectors = []
        # the decided rate over the decision window, past the first 10% (start-up)
        steady = _rate(timeline, count, cfg.warmup_fraction)
        rate = steady["throughput_tx_s"]
        return {
            "workers": workers,
            "offered_tx_s": cfg.live_rate,
            "event_speedup": round(speedup),
            "producer_sent": sent.get("transactions", 0),
            "producer_achieved_tx_s": round(sent.get("rate", 0.0)),
            "decisions": count,
            "throughput_tx_s": round(rate, 1),
            "measured_s": steady.get("measured_s"),
            "timeline": _thin(timeline),
            "resources": mon.summary(phase),
        }
    finally:
        comps.detectors, comps.producer = [], []
        sb.stop()
        if not cfg.keep:
            sb.destroy(base)


# ---- 2. latency at fixed offered rates ----------------------------------------------------
class _LatencyReader(threading.Thread):
    """Reads ``output`` (read_committed); per decision: (received wall time, tx event time)."""

    def __init__(self, settings: Settings, deadline_s: float) -> None:
        super().__init__(name="bench-latency-reader", daemon=True)
        self.consumer = _output_consumer(settings)
        self.decode = msgspec.json.Decoder(_TxTime).decode
        self.received: list[float] = []
        self.event: list[float] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.deadline = time.monotonic() + deadline_s

    def run(self) -> None:
        try:
            while not self.stopping.is_set() and time.monotonic() < self.deadline:
                # Stamped as soon as anything arrives: a batch consume that waited out its
                # timeout would add that wait to every message's measured latency.
                msgs = consume_ready(self.consumer, 10000, 0.05)
                now = time.time()
                ev = [self.decode(m.value() or b"").tx_datetime.timestamp()
                      for m in msgs if m.error() is None]
                with self.lock:
                    self.event.extend(ev)
                    self.received.extend([now] * len(ev))
        finally:
            self.consumer.close()

    def since(self, t0: float) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            ev = np.asarray(self.event)
            rc = np.asarray(self.received)
        keep = ev >= t0
        return ev[keep], rc[keep]


def run_latency(
    base: Settings,
    cfg: BenchConfig,
    frame_path: Path,
    workers: int,
    comps: Components,
    mon: Monitor,
    log_dir: Path,
    start: Starter = detector,
    label: str = "latency",
) -> list[dict]:
    sb = Sandbox.create(base, log_dir)
    budget = 60 + sum(cfg.duration_s + 45 for _ in cfg.rates)
    reader = _LatencyReader(sb.settings, budget)
    results = []
    try:
        reader.start()
        mon.phase = f"{label} warm-up"
        procs = [start(sb, i) for i in range(workers)]
        comps.detectors = [p.pid for p in procs]
        # warm-up: a short burst, and wait until all of it is decided (the group is up)
        t0 = time.time()
        proc, _ = _loadgen(sb, comps, "warmup", frame_path, "live", rate=500, count=1000)
        _wait(proc, 60)
        deadline = time.monotonic() + 60
        while len(reader.since(t0)[0]) < 1000 and time.monotonic() < deadline:
            time.sleep(0.2)
        for rate in cfg.rates:
            phase = f"{label} {rate:,.0f} tx/s"
            mon.phase = phase
            count = int(rate * cfg.duration_s)
            t0 = time.time()
            proc, summary = _loadgen(
                sb,
                comps,
                f"rate{int(rate)}",
                frame_path,
                "live",
                rate=rate,
                count=count,
                label_delay_s=cfg.label_delay_s,
            )
            _wait(proc, cfg.duration_s * 3 + 30)
            comps.producer = []
            sent = _read_json(summary)
            produced_end = sent.get("ended", time.time())
            n_sent = sent.get("transactions", count)
            drain_deadline = time.monotonic() + 30
            while len(reader.since(t0)[0]) < n_sent and time.monotonic() < drain_deadline:
                time.sleep(0.1)
            ev, rc = reader.since(t0)
            lat_ms = (rc - ev) * 1000.0
            last = float(rc.max()) if len(rc) else produced_end
            res = {
                "offered_tx_s": rate,
                "duration_s": cfg.duration_s,
                "workers": workers,
                "producer_sent": n_sent,
                "producer_achieved_tx_s": round(sent.get("rate", 0.0)),
                "decisions": int(len(ev)),
                "decided_tx_s": round(len(ev) / (last - sent.get("started", t0)), 1) if len(ev) else 0.0,
                "backlog_drain_s": round(max(0.0, last - produced_end), 2),
            }
            if len(lat_ms):
                res.update({f"p{q}_ms": round(float(np.percentile(lat_ms, q)), 1) for q in (50, 95, 99)})
                res["max_ms"] = round(float(lat_ms.max()), 1)
            # Kept up: the producer reached the rate, (almost) everything was decided - the
            # simulator's rare amounts that round to 0.00 go to the DLQ, not to output - and
            # the backlog left when the producer stopped drained within 5 s.
            res["undecided"] = int(n_sent - len(ev))
            res["kept_up"] = bool(
                len(ev) >= 0.999 * n_sent
                and res["backlog_drain_s"] < 5.0
                and sent.get("rate", 0.0) >= 0.9 * rate
            )
            res["resources"] = mon.summary(phase)
            results.append(res)
        return results
    finally:
        reader.stopping.set()
        reader.join(10)
        comps.detectors, comps.producer = [], []
        sb.stop()
        if not cfg.keep:
            sb.destroy(base)


# ---- 3. the naive baseline ---------------------------------------------------------------
def run_naive(base: Settings, cfg: BenchConfig, sb: Sandbox, comps: Components, mon: Monitor) -> dict:
    """The naive detector on the same preloaded ``input`` (its own group and output topic)."""
    topic = sb.settings.topic_output.removesuffix("output") + "naive-output"
    admin = AdminClient(sb.settings.kafka_client_config())
    rf = min(3, len(admin.list_topics(timeout=30).brokers))
    for f in admin.create_topics([NewTopic(topic, 3, rf)], operation_timeout=30).values():
        f.result()
    summary = sb.log_dir / f"{sb.database}-naive.json"
    mon.phase = "naive baseline"
    proc = sb.spawn(
        f"{sb.database}-naive",
        "fraudstream.bench.naive",
        "--seconds",
        str(cfg.naive_seconds),
        "--output-topic",
        topic,
        "--summary",
        str(summary),
    )
    comps.naive = [proc.pid]
    try:
        _wait(proc, cfg.naive_seconds + 60)
    finally:
        comps.naive = []
    res = _read_json(summary)
    return {
        "throughput_tx_s": round(res.get("rate", 0.0), 1),
        "processed": res.get("processed", 0),
        "suspicious_rows": res.get("suspicious", 0),
        "seconds": round(res.get("seconds", 0.0), 2),
        "resources": mon.summary("naive baseline"),
    }


# ---- all of it -----------------------------------------------------------------------------
def run_all(base: Settings, cfg: BenchConfig, out: Path, progress=print) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    log_dir = out / "logs"
    log_dir.mkdir(exist_ok=True)
    started = time.monotonic()
    progress(f"generating {cfg.preload:,} handbook transactions")
    frame = make_frame(cfg.preload, cfg.customers, cfg.terminals)
    frame_path = log_dir / "frame.parquet"
    frame.to_parquet(frame_path)
    comps = Components(base)
    mon = comps.monitor().start()
    results: dict = {
        "config": {k: v for k, v in cfg.__dict__.items()},
        "throughput": [],
        "latency": [],
        "resources_idle": {},
    }
    try:
        time.sleep(2)
        results["resources_idle"] = mon.summary("idle")
        naive_sb: Sandbox | None = None
        for i, w in enumerate(cfg.workers):
            progress(f"throughput: preload {cfg.preload:,}, {w} detector(s)")
            res, sb = run_throughput(
                base, cfg, frame_path, cfg.preload, w, comps, mon, log_dir, keep_sandbox=(i == 0)
            )
            naive_sb = sb or naive_sb
            results["throughput"].append(res)
            progress(f"  {res['throughput_tx_s']:,.0f} tx/s")
        if naive_sb is not None:
            try:
                progress(f"naive baseline for {cfg.naive_seconds:.0f} s on the same preloaded input")
                results["naive"] = run_naive(base, cfg, naive_sb, comps, mon)
            finally:
                if not cfg.keep:
                    naive_sb.destroy(base)
            best = max((r["throughput_tx_s"] for r in results["throughput"]), default=0.0)
            w1 = results["throughput"][0]["throughput_tx_s"]
            nv = results["naive"]["throughput_tx_s"]
            results["naive"]["ratio_fraudstream_over_naive"] = round(w1 / nv, 1) if nv else None
            results["naive"]["ratio_best_over_naive"] = round(best / nv, 1) if nv else None
        if cfg.floor:
            progress(f"Kafka alone (exactly-once pass-through, no detector): preload {cfg.preload:,}")
            floor, _ = run_throughput(base, cfg, frame_path, cfg.preload, 1, comps, mon, log_dir,
                                      start=kafka_alone, label="Kafka alone", group=FLOOR_GROUP)
            results["floor"] = {"throughput": floor, "latency": []}
            progress(f"  {floor['throughput_tx_s']:,.0f} tx/s")
        if cfg.live_seconds > 0:
            w = cfg.workers[0]
            progress(f"throughput with a live producer offering {cfg.live_rate:,.0f} tx/s, {w} detector(s)")
            results["live_throughput"] = run_live_throughput(base, cfg, frame_path, w, comps, mon, log_dir)
        if cfg.rates:
            progress(
                f"latency at {', '.join(f'{r:,.0f}' for r in cfg.rates)} tx/s, {cfg.duration_s:.0f} s each"
            )
            results["latency"] = run_latency(base, cfg, frame_path, cfg.workers[0], comps, mon, log_dir)
            if cfg.floor:
                progress("the same rates with Kafka alone (the transaction protocol's own latency)")
                results["floor"]["latency"] = run_latency(base, cfg, frame_path, 1, comps, mon, log_dir,
                                                          start=kafka_alone, label="Kafka alone")
    finally:
        mon.stop()
        results["samples"] = [
            {
                "t": s.t,
                "phase": s.phase,
                "cpu": s.cpu,
                "rss_mb": {k: round(v / 2**20, 1) for k, v in s.rss.items()},
            }
            for s in mon.samples
        ]
        results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results
