"""``fraudstream soak``: one detector under a steady live load; memory and lag must stay flat.

A live producer offers ``rate`` tx/s for ``seconds`` of wall time, with labels
``label_delay_s`` of event time later; every ``sample_s`` the detector's RSS (with its
publisher process) and the consumer lag of its group (end offsets of ``input`` minus the
group's committed offsets) are sampled.

Event time runs ``speedup`` times faster than wall time (ending at now): the detector keeps
30 days of every customer and 38 of every terminal, so with event time = wall time a
10-minute run would only ever add state, and its memory could not be flat whether it leaks or
not. At the default 14,400 (4 event hours per second) the windows are full after about four
minutes and expire as much as arrives from then on: a steady state whose memory must be flat.

After a warm-up (the first ``warmup_s``: imports, state growing to its steady window), memory is "flat" when a
least-squares line through the RSS samples rises less than ``max_growth`` of the mean over the
measured window, and lag is "flat" when it never exceeds ``max_lag_s`` seconds of traffic and
ends below 2 seconds of traffic. Bounded: the producer stops after ``seconds``; the whole run
after ``seconds + 120``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import KafkaException

from fraudstream.bench.procmon import _descendants, _memory
from fraudstream.bench.progress import DETECTOR_GROUP, Progress
from fraudstream.bench.runner import LABEL_DELAY_EVENT_S, Components, _loadgen, _read_json, make_frame
from fraudstream.bench.sandbox import Sandbox
from fraudstream.settings import Settings

MAX_PROBE_ERRORS = 6  # consecutive failed lag probes (a minute at 10-s samples) end the soak


@dataclass
class SoakConfig:
    rate: float = 5000.0
    seconds: float = 600.0
    sample_s: float = 10.0
    speedup: float = 14_400.0
    warmup_s: float | None = None  # default: until the windows are full (45 event days)
    label_delay_s: float | None = None  # event time; default 7 days (60 s without speedup)
    max_growth: float = 0.10
    max_lag_s: float = 10.0
    keep: bool = False

    def __post_init__(self) -> None:
        if self.warmup_s is None:
            self.warmup_s = 60.0 if self.speedup <= 1 else max(60.0, 45 * 86_400 / self.speedup)
        if self.label_delay_s is None:
            self.label_delay_s = 60.0 if self.speedup <= 1 else LABEL_DELAY_EVENT_S


@dataclass
class SoakResult:
    config: dict[str, Any]
    samples: list[dict[str, float]] = field(default_factory=list)
    sent: int = 0
    verdict: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def judge(samples: list[dict[str, float]], cfg: SoakConfig) -> dict[str, Any]:
    """The verdict (pure: unit-tested on made-up series)."""
    warmup = cfg.warmup_s if cfg.warmup_s is not None else 60.0
    steady = [s for s in samples if s["t"] >= warmup]
    if len(steady) < 3:
        return {"flat_memory": False, "flat_lag": False, "reason": "too few samples after warm-up"}
    t = np.array([s["t"] for s in steady])
    rss = np.array([s["rss_mb"] for s in steady])
    lag = np.array([s["lag"] for s in steady])
    slope = float(np.polyfit(t, rss, 1)[0])  # MB per second
    growth = slope * float(t[-1] - t[0]) / float(rss.mean())
    return {
        "rss_mb_first": round(float(rss[0]), 1),
        "rss_mb_last": round(float(rss[-1]), 1),
        "rss_mb_max": round(float(rss.max()), 1),
        "rss_slope_mb_per_min": round(slope * 60, 2),
        "rss_growth_fraction": round(growth, 4),
        "lag_max": int(lag.max()),
        "lag_final": int(lag[-1]),
        "lag_max_seconds_of_traffic": round(float(lag.max()) / cfg.rate, 2),
        "flat_memory": bool(growth < cfg.max_growth),
        "flat_lag": bool(lag.max() <= cfg.max_lag_s * cfg.rate and lag[-1] <= 2 * cfg.rate),
    }


def run_soak(base: Settings, cfg: SoakConfig, out: Path, progress: Callable[[str], None]) -> SoakResult:
    out.mkdir(parents=True, exist_ok=True)
    frame_path = out / "soak-frame.parquet"
    make_frame(300_000, 5000, 10000).to_parquet(frame_path)
    sb = Sandbox.create(base, out / "logs", tag="soak")
    comps = Components(base)
    result = SoakResult(config=asdict(cfg))
    probe = Progress(sb.settings, DETECTOR_GROUP, sb.settings.topic_input)
    try:
        detector = sb.start_detector(0)
        proc, summary = _loadgen(sb, comps, "soak", frame_path, "live", rate=cfg.rate,
                                 count=int(cfg.rate * cfg.seconds), label_delay_s=cfg.label_delay_s,
                                 speedup=cfg.speedup)
        started = time.monotonic()
        hard_stop = started + cfg.seconds + 120
        next_sample = started
        probe_errors = 0
        while time.monotonic() < hard_stop:
            now = time.monotonic()
            if now >= next_sample:
                # The worker and its publisher process (see pipeline.publisher).
                rss = sum(_memory(pid, pss=False)[0] for pid in _descendants([detector.pid]))
                try:
                    lag = probe.lag()
                    probe_errors = 0
                except KafkaException as exc:
                    # The group coordinator moves when the controller rebalances leaders (every
                    # 5 min by default): the probe asks again next time. Not the detector's lag.
                    probe_errors += 1
                    if probe_errors > MAX_PROBE_ERRORS:
                        raise
                    progress(f"lag probe failed ({exc.args[0].name()}): sample skipped")
                    next_sample += cfg.sample_s
                    continue
                sample = {"t": round(now - started, 1), "rss_mb": round(rss / 2**20, 1), "lag": lag}
                result.samples.append(sample)
                progress(f"t={sample['t']:.0f}s rss={sample['rss_mb']} MB lag={lag}")
                next_sample += cfg.sample_s
            if proc.poll() is not None and now - started >= cfg.seconds:
                break
            if detector.poll() is not None:
                raise RuntimeError(f"the detector exited with {detector.returncode} during the soak")
            time.sleep(0.5)
        if proc.poll() is None:
            proc.terminate()
        proc.wait(60)
        result.sent = int(_read_json(summary).get("transactions", 0))
        result.verdict = judge(result.samples, cfg)
    finally:
        probe.close()
        sb.stop()
        if not cfg.keep:
            sb.destroy(base)
    (out / "soak.json").write_text(result.to_json())
    return result
