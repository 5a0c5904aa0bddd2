"""Scheduled retraining: a new model every N event-time days of labelled data or N new labels.

The schedule follows *event time* (the ``tx_datetime`` of the latest labelled transaction in
the feature store), not the wall clock, so a replay of months of history retrains as often as
live traffic would, and a stalled label feed does not produce models trained on nothing new.

Windows end at the last complete day of labelled data ``T`` (midnight UTC): validation is
``[T - validate_days, T)`` and training the ``train_days`` before it. The candidate is promoted
only if it beats the active model *re-scored on the same validation rows* (metrics stored at
another model's training time come from another window and would not be comparable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog

from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.learning import registry
from fraudstream.learning.feature_store import training_frame
from fraudstream.learning.metrics import assessment_metrics
from fraudstream.learning.train import train_model

log = structlog.get_logger(__name__)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Schedule:
    """When to retrain and on what.

    Attributes:
        every_days: retrain once the labelled data reaches this many event-time days past the
            end of the latest model's training window (0: off).
        every_labels: ... or once this many labels arrived since the latest model (0: off).
        train_days: length of the training window.
        validate_days: length of the validation window right after it.
    """

    every_days: float = 7.0
    every_labels: int = 0
    train_days: int = 7
    validate_days: int = 7


@dataclass(frozen=True)
class StoreState:
    """What the labelled feature store holds: the latest labelled event time and label count."""

    latest: datetime | None
    labels: int


@dataclass(frozen=True)
class LastModel:
    """The latest model: the end of the data it saw (training or validation window)."""

    trained_to: datetime | None
    labels: int


def due(schedule: Schedule, store: StoreState, last: LastModel | None) -> bool:
    """Whether a model should be trained now (pure: the trainer loop and the tests call it)."""
    if store.latest is None:
        return False
    if last is None or last.trained_to is None:
        return True
    step = timedelta(days=schedule.every_days)
    by_days = schedule.every_days > 0 and store.latest - last.trained_to >= step
    by_labels = schedule.every_labels > 0 and store.labels - last.labels >= schedule.every_labels
    return bool(by_days or by_labels)


def windows(schedule: Schedule, latest: datetime) -> tuple[datetime, datetime, datetime]:
    """(train start, validation start, validation end) ending at the last complete day."""
    end = datetime(latest.year, latest.month, latest.day, tzinfo=UTC)
    val_start = end - schedule.validate_days * DAY
    return val_start - schedule.train_days * DAY, val_start, end


def store_state(conn: psycopg.Connection[Any]) -> StoreState:
    row = conn.execute(
        "SELECT max(tx_datetime) FILTER (WHERE features IS NOT NULL), count(*) "
        "FROM labelled_features WHERE is_fraud IS NOT NULL"
    ).fetchone()
    assert row is not None
    return StoreState(row[0], int(row[1]))


def last_model(conn: psycopg.Connection[Any]) -> LastModel | None:
    # The data a model has seen ends with its validation window when it had one.
    row = conn.execute(
        "SELECT coalesce((metrics ->> 'validated_to')::timestamptz, trained_to), "
        "coalesce((metrics ->> 'labels_total')::bigint, 0) "
        "FROM models ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return None if row is None else LastModel(row[0], int(row[1]))


@dataclass
class Outcome:
    version: int
    metrics: dict[str, Any]
    active_metrics: dict[str, Any] | None
    promoted: bool


def train_and_register(
    conn: psycopg.Connection[Any],
    train_from: datetime,
    train_to: datetime,
    validate: tuple[datetime, datetime] | None,
    *,
    force_promote: bool = False,
    extra_metrics: dict[str, Any] | None = None,
) -> Outcome | None:
    """Train on ``[train_from, train_to)``, validate, compare with the active model on the same
    validation rows, register and promote if better. None when there is not enough data."""
    frame = training_frame(conn, train_from, train_to)
    if frame.empty or frame["is_fraud"].nunique() < 2:
        return None
    model = train_model(frame, FEATURE_NAMES)
    metrics: dict[str, Any] = {"train_rows": len(frame), **(extra_metrics or {})}
    active_metrics: dict[str, Any] | None = None
    if validate is not None:
        val = training_frame(conn, *validate)
        if not val.empty:
            probs = model.predict_frame(val)
            y, customers, days = val["is_fraud"], val["customer_id"], val["tx_datetime"]
            metrics.update(assessment_metrics(y, probs, customers, days))
            metrics["validated_from"] = validate[0].isoformat()
            metrics["validated_to"] = validate[1].isoformat()
            active = registry.active_model(conn)
            if active is not None:
                active_metrics = assessment_metrics(y, active.predict_frame(val), customers, days)
                metrics["active_version"] = active.version
                metrics["active_on_same_window"] = active_metrics
    if force_promote:
        promote = True
    elif validate is None:
        promote = registry.should_promote(metrics, registry.active_metrics(conn))
    else:
        promote = registry.should_promote(metrics, active_metrics)
    version = registry.register(conn, model, metrics, train_from, train_to, promote=promote)
    return Outcome(version, metrics, active_metrics, promote)


def run_once(conn: psycopg.Connection[Any], schedule: Schedule) -> Outcome | None:
    """Train if :func:`due`; returns what was done (None: not due, or not enough data)."""
    store = store_state(conn)
    if not due(schedule, store, last_model(conn)):
        return None
    assert store.latest is not None
    t0, v0, v1 = windows(schedule, store.latest)
    outcome = train_and_register(conn, t0, v0, (v0, v1), extra_metrics={"labels_total": store.labels})
    if outcome is not None:
        m = outcome.metrics
        log.info("trainer.model", version=outcome.version, promoted=outcome.promoted,
                 train_from=t0.isoformat(), validate_to=v1.isoformat(),
                 cp100=_round(m.get("card_precision@100")),
                 active_cp100=_round((outcome.active_metrics or {}).get("card_precision@100")))
    return outcome


def _round(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else round(float(x), 4)
