"""The overview's time buckets: rates, mix, latency percentiles, lag, bounded memory."""

from __future__ import annotations

from fraudstream.api.stats.window import SAMPLES, StatsWindow, percentiles

NOW = 1_800_000_000_000  # a bucket boundary (ms)


def test_summary_counts_rates_and_latency() -> None:
    w = StatsWindow(minutes=10, bucket_s=10, seed=1)
    for i in range(100):
        decision = "decline" if i < 5 else "review" if i < 20 else "approve"
        w.add_decision(NOW - 30_000 + i, decision, event_ms=NOW - 30_000 + i - (i + 1) * 10)
    for i in range(50):
        w.add_label(NOW - 5_000, is_fraud=i < 5)
    w.set_lag(NOW - 20_000, 42)
    s = w.summary(NOW + 5_000, seconds=60)
    assert s["decision_mix"] == {"approve": 80, "review": 15, "decline": 5}
    assert s["alert_rate"] == 0.2 and s["fraud_rate"] == 0.1 and s["labels"] == 50 and s["lag"] == 42
    lat = s["latency_ms"]
    assert lat["p50"] == 505.0 and 980 <= lat["p99"] <= 1000
    # Whole buckets inside the last 60 s: from NOW-50s to NOW+5s, 55 s.
    assert abs(s["throughput_tps"] - 100 / 55) < 0.01


def test_latency_outside_live_range_is_ignored() -> None:
    w = StatsWindow(minutes=5)
    w.add_decision(NOW, "approve", event_ms=NOW - 86_400_000)  # replayed history
    w.add_decision(NOW, "approve", event_ms=NOW + 5_000)  # clock skew
    w.add_decision(NOW, "approve", event_ms=None)
    s = w.summary(NOW)
    assert s["decisions"] == 3 and s["latency_ms"]["p50"] is None


def test_series_has_one_point_per_bucket_with_gaps_as_zero() -> None:
    w = StatsWindow(minutes=60, bucket_s=10)
    w.add_decision(NOW - 15_000, "review")
    w.add_decision(NOW - 15_000, "approve")
    series = w.series(NOW, minutes=1)
    assert len(series) == 6 and series[-1]["t"] == NOW and series[0]["t"] == NOW - 50_000
    by_t = {p["t"]: p for p in series}
    point = by_t[NOW - 20_000]
    assert point["decisions"] == 2 and point["alert_rate"] == 0.5 and point["alerts_per_min"] == 6.0
    assert point["throughput_tps"] == 0.2
    assert by_t[NOW]["decisions"] == 0 and by_t[NOW]["alert_rate"] is None and by_t[NOW]["lag"] is None


def test_memory_is_bounded() -> None:
    w = StatsWindow(minutes=1, bucket_s=10, seed=3)
    for i in range(SAMPLES * 3):
        w.add_decision(NOW, "approve", event_ms=NOW - (i % 1000))
    for k in range(100):
        w.add_decision(NOW + k * 10_000, "approve")
    assert len(w._buckets) <= w.n + 6
    assert all(len(b.latencies) <= SAMPLES for b in w._buckets.values())


def test_percentiles_of_nothing() -> None:
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}
    assert percentiles([1.0, 2.0, 3.0], (50,)) == {"p50": 2.0}
