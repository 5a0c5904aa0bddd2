"""The model registry in PostgreSQL (table ``models``, migration 0001).

Every trained model is stored as a new immutable version: the LightGBM text artifact, the
feature list it expects (in column order), its parameters (including the ``score_offset`` that
calibrates its probabilities, see :mod:`fraudstream.learning.train`), its evaluation metrics and
the event-time range it was trained on. Exactly one version is active, guaranteed by the unique
partial index on ``active``; detectors load it through :class:`~.watcher.ModelWatcher`.

Promoting is two updates in one transaction, serialised by a transaction-level advisory lock
(the same design as :mod:`fraudstream.rules.store`): without the lock two concurrent promotions
could both deactivate the same old row and the second would fail on the unique index instead of
simply winning. Functions take an open :class:`psycopg.Connection` and use
``conn.transaction()``: on an autocommit connection they commit on return, inside a caller's
transaction they become a savepoint. All SQL is parameterised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fraudstream.learning.train import KIND, TrainedModel

__all__ = [
    "LOCK_ID",
    "PROMOTION_METRIC",
    "ModelInfo",
    "active_metrics",
    "active_model",
    "active_version",
    "get_model",
    "list_models",
    "promote",
    "register",
    "should_promote",
]

LOCK_ID = 0x6D6F64656C  # "model": serialises promotions across processes
#: The metric a candidate must beat: average precision is threshold-free and, unlike AUC ROC,
#: sensitive to how the few frauds rank at the top, which is what investigators see.
PROMOTION_METRIC = "average_precision"


@dataclass(frozen=True)
class ModelInfo:
    """One row of the registry, without the artifact."""

    version: int
    kind: str
    features: list[str]
    params: dict[str, Any]
    metrics: dict[str, Any]
    trained_from: datetime | None
    trained_to: datetime | None
    active: bool
    created_at: datetime
    promoted_at: datetime | None


def _json_safe(value: Any) -> Any:
    """NaN and infinities as None (jsonb has neither), NumPy scalars as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # NumPy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))


def _switch_active(conn: psycopg.Connection[Any], version: int) -> None:
    """Make ``version`` the only active row; the caller holds the lock, inside a transaction."""
    conn.execute("UPDATE models SET active = false WHERE active AND version <> %s", (version,))
    conn.execute(
        "UPDATE models SET active = true, promoted_at = now() WHERE version = %s AND NOT active",
        (version,),
    )


def register(
    conn: psycopg.Connection[Any],
    trained: TrainedModel,
    metrics: Mapping[str, Any],
    trained_from: datetime | None,
    trained_to: datetime | None,
    promote: bool = False,
) -> int:
    """Store ``trained`` as a new version (optionally promoting it) and return its number.

    Sets ``trained.version`` to the new version (as a string, what decisions carry). The insert
    and the promotion are one transaction: readers see either the old or the new active model.
    """
    params = {
        "lightgbm": trained.params,
        "num_boost_round": trained.num_boost_round,
        "score_offset": trained.score_offset,
        "train_info": trained.train_info,
    }
    with conn.transaction():
        if promote:
            _lock(conn)
        row = conn.execute(
            "INSERT INTO models (kind, features, params, metrics, artifact, trained_from, trained_to)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING version",
            (
                KIND,
                Jsonb(list(trained.features)),
                Jsonb(_json_safe(params)),
                Jsonb(_json_safe(dict(metrics))),
                trained.model_string().encode("utf-8"),
                trained_from,
                trained_to,
            ),
        ).fetchone()
        assert row is not None
        version = int(row[0])
        if promote:
            _switch_active(conn, version)
    trained.version = str(version)
    return version


def promote(conn: psycopg.Connection[Any], version: int) -> None:
    """Make a stored version the active one (rolling back is promoting an older version).

    Raises LookupError when the version does not exist.
    """
    with conn.transaction():
        _lock(conn)
        row = conn.execute("SELECT 1 FROM models WHERE version = %s", (version,)).fetchone()
        if row is None:
            raise LookupError(f"no model version {version}")
        _switch_active(conn, version)


def active_version(conn: psycopg.Connection[Any]) -> int | None:
    """The active version number only: a cheap query for pollers."""
    row = conn.execute("SELECT version FROM models WHERE active").fetchone()
    return None if row is None else int(row[0])


def _load(version: int, kind: str, features: Any, params: Any, artifact: bytes) -> TrainedModel:
    if kind != KIND:
        raise ValueError(f"model version {version} is of kind {kind!r}, not {KIND!r}")
    params = params or {}
    return TrainedModel.from_model_string(
        bytes(artifact).decode("utf-8"),
        features=list(features),
        params=params.get("lightgbm") or {},
        score_offset=float(params.get("score_offset") or 0.0),
        version=str(version),
    )


def get_model(conn: psycopg.Connection[Any], version: int) -> TrainedModel | None:
    """A stored version, ready to score; None when it does not exist.

    Raises ValueError when the row cannot be turned into a model (unknown kind, corrupt
    artifact, feature list not matching the artifact).
    """
    row = conn.execute(
        "SELECT kind, features, params, artifact FROM models WHERE version = %s", (version,)
    ).fetchone()
    return None if row is None else _load(version, row[0], row[1], row[2], row[3])


def active_model(conn: psycopg.Connection[Any]) -> TrainedModel | None:
    """The active model, ready to score, or None when no version is active."""
    row = conn.execute("SELECT version, kind, features, params, artifact FROM models WHERE active").fetchone()
    return None if row is None else _load(int(row[0]), row[1], row[2], row[3], row[4])


def active_metrics(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    """The active version's stored metrics (for :func:`should_promote`), None when none is active."""
    row = conn.execute("SELECT metrics FROM models WHERE active").fetchone()
    return None if row is None else dict(row[0] or {})


def list_models(conn: psycopg.Connection[Any]) -> list[ModelInfo]:
    """Every stored version, newest first, without artifacts."""
    rows = conn.execute(
        "SELECT version, kind, features, params, metrics, trained_from, trained_to, active,"
        " created_at, promoted_at FROM models ORDER BY version DESC"
    ).fetchall()
    return [
        ModelInfo(
            version=int(r[0]),
            kind=r[1],
            features=list(r[2] or []),
            params=dict(r[3] or {}),
            metrics=dict(r[4] or {}),
            trained_from=r[5],
            trained_to=r[6],
            active=bool(r[7]),
            created_at=r[8],
            promoted_at=r[9],
        )
        for r in rows
    ]


def should_promote(
    new_metrics: Mapping[str, Any],
    active_metrics: Mapping[str, Any] | None,
    metric: str = PROMOTION_METRIC,
) -> bool:
    """Whether a candidate should replace the active model.

    True when there is no active model (or it has no usable ``metric``: anything measured beats
    nothing), or when the candidate's ``metric`` is strictly higher; False when the candidate's
    own metric is missing or not finite. Both sets of metrics should come from the same
    evaluation window for the comparison to mean anything; that is the trainer's job.
    """
    new = new_metrics.get(metric)
    if new is None or not math.isfinite(float(new)):
        return False
    if active_metrics is None:
        return True
    old = active_metrics.get(metric)
    if old is None or not math.isfinite(float(old)):
        return True
    return float(new) > float(old)
