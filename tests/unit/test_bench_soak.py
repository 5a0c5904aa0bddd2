"""The soak verdict on made-up series: a leak or a growing lag must fail it."""

from __future__ import annotations

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
