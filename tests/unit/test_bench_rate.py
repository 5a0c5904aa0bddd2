"""The bench's steady rate from a timeline of (seconds, decisions committed)."""

from __future__ import annotations

from fraudstream.bench.runner import _rate


def test_rate_is_measured_after_the_warm_up() -> None:
    timeline = [(0.2, 0), (1.0, 0), (2.0, 1000), (3.0, 3000), (4.0, 5000), (5.0, 7000), (5.2, 7000)]
    r = _rate(timeline, 7000, 0.1)
    assert r["warmup_decisions"] == 1000 and r["measured_s"] == 3.0
    assert r["throughput_tx_s"] == 2000.0 and not r["whole_phase"]
    assert r["first_decision_s"] == 2.0 and r["completed_s"] == 5.0


def test_one_commit_for_everything_is_rated_over_the_whole_phase() -> None:
    """Committed offsets move a whole transaction at a time: a preload decided in one
    transaction has no window after the warm-up, so its rate covers the whole phase."""
    r = _rate([(0.2, 0), (7.0, 0), (7.5, 20000), (7.7, 20000)], 20000, 0.1)
    assert r["whole_phase"] and r["measured_s"] == 7.5
    assert r["throughput_tx_s"] == round(20000 / 7.5, 1)


def test_nothing_decided_is_zero() -> None:
    assert _rate([(0.2, 0), (0.4, 0)], 100, 0.1)["throughput_tx_s"] == 0.0
