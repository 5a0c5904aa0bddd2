"""The soak verdict on made-up series: a leak or a growing lag must fail it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fraudstream.bench.loadgen import event_clock
from fraudstream.bench.soak import SoakConfig, judge

CFG = SoakConfig(rate=5000, seconds=600, warmup_s=60)


def series(rss, lag):  # noqa: ANN001, ANN201
    return [{"t": float(t), "rss_mb": rss(t), "lag": lag(t)} for t in range(0, 601, 10)]


def test_flat_memory_and_lag_pass() -> None:
    v = judge(series(lambda t: 600 + (5 if t % 20 else -5), lambda t: 2000), CFG)
    assert v["flat_memory"] and v["flat_lag"]


def test_a_leak_fails() -> None:
    v = judge(series(lambda t: 600 + t * 0.2, lambda t: 2000), CFG)  # +108 MB over 9 min
    assert not v["flat_memory"] and v["flat_lag"]


def test_a_growing_lag_fails() -> None:
    v = judge(series(lambda t: 600, lambda t: t * 200), CFG)
    assert v["flat_memory"] and not v["flat_lag"]


def test_the_warm_up_is_ignored_and_too_few_samples_fail() -> None:
    v = judge(series(lambda t: 100 if t < 60 else 600, lambda t: 100_000 if t < 60 else 0), CFG)
    assert v["flat_memory"] and v["flat_lag"]
    assert not judge([{"t": 70.0, "rss_mb": 1.0, "lag": 0}], CFG)["flat_memory"]


def test_the_default_soak_runs_event_time_through_full_windows() -> None:
    cfg = SoakConfig(rate=5000, seconds=600)
    assert cfg.speedup * cfg.seconds >= 60 * 86_400  # 10 minutes cover 60+ days of event time
    assert cfg.warmup_s is not None and cfg.warmup_s * cfg.speedup >= 38 * 86_400  # windows full
    assert cfg.label_delay_s == 7 * 86_400
    assert SoakConfig(speedup=1).label_delay_s == 60 and SoakConfig(speedup=1).warmup_s == 60


def test_the_event_clock_runs_fast_and_ends_now_never_later() -> None:
    before = datetime.now(UTC)
    clock = event_clock(span_s=600, speedup=14_400)
    first = clock()
    assert before - timedelta(days=100, seconds=5) <= first <= before - timedelta(days=99)
    later = clock()
    assert first <= later <= datetime.now(UTC)
    assert event_clock(600, 1.0)() >= before  # no speedup: event time is now


def test_the_bench_sandbox_passes_on_the_detector_s_own_settings_only() -> None:
    """Its detectors get the sandbox's cluster, database and topics whatever the caller's
    environment says, but a setting of their own behaviour reaches them, so it can be measured."""
    from fraudstream.bench.sandbox import inherited

    env = inherited({"PATH": "/bin", "KAFKA_BOOTSTRAP_SERVERS": "elsewhere:9092",
                     "DATABASE_URL": "postgresql://elsewhere/db", "FRAUDSTREAM_TOPIC_INPUT": "theirs",
                     "FRAUDSTREAM_DETECTOR_DATABASE_URL": "postgresql://x/y",
                     "FRAUDSTREAM_PUBLISHER_PROCESS": "false"})
    assert env == {"PATH": "/bin", "FRAUDSTREAM_PUBLISHER_PROCESS": "false"}
