"""Time buckets of decisions, labels, latencies and lag: pure, so it is tested without Kafka.

Decisions are bucketed by when they were published (their ``output`` message timestamp),
labels by their ``training`` timestamp. Latency is that publish time minus the transaction's
event time, the same definition as ``fraudstream bench``; it is only meaningful for live
traffic, so values outside [0, 10 min) (replayed history, clock skew) are not recorded.
Each bucket keeps at most ``SAMPLES`` latencies (reservoir sampling), so memory is bounded
whatever the rate.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import numpy as np

SAMPLES = 2000
MAX_LATENCY_MS = 600_000
DECISIONS = ("approve", "review", "decline")


@dataclass
class Bucket:
    decisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    labels: int = 0
    frauds: int = 0
    latencies: list[float] = field(default_factory=list)
    seen_latencies: int = 0
    lag: int | None = None

    def add_latency(self, ms: float, rng: random.Random) -> None:
        self.seen_latencies += 1
        if len(self.latencies) < SAMPLES:
            self.latencies.append(ms)
        else:
            j = rng.randrange(self.seen_latencies)
            if j < SAMPLES:
                self.latencies[j] = ms


def percentiles(values: list[float], qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
    if not values:
        return {f"p{q:g}": None for q in qs}
    arr = np.percentile(np.asarray(values, dtype=np.float64), qs)
    return {f"p{q:g}": round(float(v), 1) for q, v in zip(qs, arr, strict=True)}


class StatsWindow:
    """The last ``minutes`` of activity in ``bucket_s``-second buckets (thread-safe)."""

    def __init__(self, minutes: int = 60, bucket_s: int = 10, seed: int | None = None) -> None:
        self.bucket_ms = bucket_s * 1000
        self.n = max(1, minutes * 60 // bucket_s)
        self._buckets: dict[int, Bucket] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def _bucket(self, ts_ms: int) -> Bucket:
        key = ts_ms // self.bucket_ms
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = Bucket()
            if len(self._buckets) > self.n + 6:  # prune the oldest
                for k in sorted(self._buckets)[: len(self._buckets) - self.n]:
                    del self._buckets[k]
        return b

    def add_decision(self, ts_ms: int, decision: str, event_ms: int | None = None) -> None:
        with self._lock:
            b = self._bucket(ts_ms)
            if decision in b.decisions:
                b.decisions[decision] += 1
            if event_ms is not None and 0 <= ts_ms - event_ms < MAX_LATENCY_MS:
                b.add_latency(float(ts_ms - event_ms), self._rng)

    def add_label(self, ts_ms: int, is_fraud: bool) -> None:
        with self._lock:
            b = self._bucket(ts_ms)
            b.labels += 1
            b.frauds += int(is_fraud)

    def set_lag(self, ts_ms: int, lag: int) -> None:
        with self._lock:
            self._bucket(ts_ms).lag = lag

    def series(self, now_ms: int, minutes: int | None = None) -> list[dict[str, object]]:
        """One point per bucket, oldest first, ending with the bucket of ``now_ms``."""
        count = self.n if minutes is None else max(1, min(self.n, minutes * 60_000 // self.bucket_ms))
        last = now_ms // self.bucket_ms
        secs = self.bucket_ms / 1000
        out: list[dict[str, object]] = []
        with self._lock:
            for key in range(last - count + 1, last + 1):
                b = self._buckets.get(key) or Bucket()
                total = sum(b.decisions.values())
                alerts = b.decisions["review"] + b.decisions["decline"]
                out.append({
                    "t": key * self.bucket_ms,
                    "decisions": total,
                    **b.decisions,
                    "throughput_tps": round(total / secs, 2),
                    "alerts_per_min": round(alerts * 60 / secs, 2),
                    "alert_rate": round(alerts / total, 5) if total else None,
                    "labels": b.labels,
                    "frauds": b.frauds,
                    "fraud_rate": round(b.frauds / b.labels, 5) if b.labels else None,
                    **{f"latency_{k}_ms": v for k, v in percentiles(b.latencies, (50, 99)).items()},
                    "lag": b.lag,
                })
        return out

    def summary(self, now_ms: int, seconds: int = 60) -> dict[str, object]:
        """Totals over the last ``seconds`` (the overview's tiles)."""
        first = (now_ms - seconds * 1000) // self.bucket_ms + 1
        last = now_ms // self.bucket_ms
        mix = dict.fromkeys(DECISIONS, 0)
        labels = frauds = 0
        lat: list[float] = []
        lag = None
        with self._lock:
            for key in range(first, last + 1):
                b = self._buckets.get(key)
                if b is None:
                    continue
                for d, n in b.decisions.items():
                    mix[d] += n
                labels, frauds = labels + b.labels, frauds + b.frauds
                lat.extend(b.latencies)
                lag = b.lag if b.lag is not None else lag
        total = sum(mix.values())
        alerts = mix["review"] + mix["decline"]
        span = max(1.0, (now_ms - first * self.bucket_ms) / 1000)
        return {
            "seconds": seconds, "decisions": total, "decision_mix": mix,
            "throughput_tps": round(total / span, 2),
            "alert_rate": round(alerts / total, 5) if total else None,
            "fraud_rate": round(frauds / labels, 5) if labels else None,
            "labels": labels,
            "latency_ms": percentiles(lat),
            "lag": lag,
        }
