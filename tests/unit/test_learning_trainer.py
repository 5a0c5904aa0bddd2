"""The retraining schedule: event-time days or new labels, complete-day windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fraudstream.learning.trainer import LastModel, Schedule, StoreState, due, windows

T = datetime(2018, 5, 20, 13, 30, tzinfo=UTC)


def test_nothing_labelled_is_never_due() -> None:
    assert not due(Schedule(), StoreState(None, 0), None)


def test_first_model_is_due_as_soon_as_there_are_labels() -> None:
    assert due(Schedule(), StoreState(T, 10), None)


def test_due_after_n_event_time_days() -> None:
    s = Schedule(every_days=7)
    last = LastModel(trained_to=T - timedelta(days=6, hours=23), labels=0)
    assert not due(s, StoreState(T, 10_000), last)
    assert due(s, StoreState(T + timedelta(hours=1), 10_000), last)


def test_due_after_n_new_labels_and_days_can_be_off() -> None:
    s = Schedule(every_days=0, every_labels=1000)
    last = LastModel(trained_to=T - timedelta(days=300), labels=5000)
    assert not due(s, StoreState(T, 5999), last)
    assert due(s, StoreState(T, 6000), last)


def test_windows_end_at_the_last_complete_day() -> None:
    t0, v0, v1 = windows(Schedule(train_days=7, validate_days=3), T)
    assert v1 == datetime(2018, 5, 20, tzinfo=UTC)
    assert v0 == datetime(2018, 5, 17, tzinfo=UTC)
    assert t0 == datetime(2018, 5, 10, tzinfo=UTC)
