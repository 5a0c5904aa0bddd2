"""The labelled feature store (table ``labelled_features``, migration 0002).

Why store features instead of recomputing them at training time: the detector's features come
from streaming state (windows, delayed terminal risk) at the moment of the decision; storing
exactly what the model saw rules out training/serving skew and makes training a single query.

Decisions and labels arrive independently and in either order (a label can beat the decision
when the detector lags, or come weeks later for a chargeback), so both writers upsert on
``transaction_id`` and each sets only its own columns, leaving the other side's untouched.
Replays are harmless: a decision upsert overwrites with the same values (the detector is
deterministic), and a label only replaces one whose ``labeled_at`` is not later, so the
latest truth wins whatever order the messages are processed in ("a later label for the same
transaction replaces the earlier one", docs/contracts.md).

Batches are written with one ``INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT``
statement: a single round trip whatever the batch size, and still fully parameterised.
Feature values that are NaN or infinite are stored as JSON null (jsonb has no NaN) and read
back as NaN, which LightGBM treats as missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd
import psycopg
from psycopg import sql

from fraudstream.features.definitions import FEATURE_NAMES, feature_matrix
from fraudstream.rules.model import DECISION_NAMES

__all__ = [
    "DecisionRecord",
    "LabelLike",
    "decision_records",
    "training_frame",
    "upsert_decisions",
    "upsert_labels",
]

#: Columns of :func:`training_frame` besides the features (which come between these and the label).
ID_COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "score", "model_version"]


@dataclass(frozen=True)
class DecisionRecord:
    """One decision as the store needs it (``contracts.Decision`` messages also fit)."""

    transaction_id: str
    tx_datetime: datetime | str  # timezone-aware, or ISO-8601 text with an offset
    customer_id: str
    terminal_id: str
    features: Mapping[str, float]
    score: float
    decision: str  # approve | review | decline
    model_version: str | None


class DecisionLike(Protocol):
    transaction_id: Any
    tx_datetime: Any
    customer_id: Any
    terminal_id: Any
    features: Mapping[str, float]
    score: float
    decision: str
    model_version: str | None


class LabelLike(Protocol):
    """What a label needs (``contracts.Label`` fits)."""

    transaction_id: Any
    is_fraud: bool
    labeled_at: Any
    source: str


def _ts_text(value: datetime | str) -> str:
    """ISO text for PostgreSQL to parse; naive datetimes are refused (their zone is unknown)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive timestamp {value!r}: an offset is required")
        return value.isoformat()
    return str(value)


def _features_json(features: Mapping[str, Any]) -> str:
    # orjson writes NaN/inf as null and accepts NumPy floats.
    return orjson.dumps({str(k): float(v) for k, v in features.items()}).decode()


def decision_records(
    transaction_id: Sequence[str],
    time_ms: np.ndarray,
    customer_id: Sequence[str],
    terminal_id: Sequence[str],
    features: Mapping[str, np.ndarray],
    score: np.ndarray,
    decision: np.ndarray,
    model_version: str | None,
    feature_names: Sequence[str] = FEATURE_NAMES,
) -> list[DecisionRecord]:
    """Records from the detector's columnar batch and ``Decisions`` (decision codes 0/1/2).

    E.g. ``decision_records(batch.transaction_id, batch.time_ms, batch.customer_id,
    batch.terminal_id, d.features, d.score, d.decision, d.model_version)``.
    """
    names = list(feature_names)
    matrix = feature_matrix(features, names).tolist()
    times = np.asarray(time_ms, dtype=np.int64).tolist()
    scores = np.asarray(score, dtype=np.float64).tolist()
    codes = np.asarray(decision).tolist()
    return [
        DecisionRecord(
            transaction_id=str(transaction_id[i]),
            tx_datetime=datetime.fromtimestamp(times[i] / 1000, tz=UTC),
            customer_id=str(customer_id[i]),
            terminal_id=str(terminal_id[i]),
            features=dict(zip(names, matrix[i], strict=True)),
            score=scores[i],
            decision=DECISION_NAMES[int(codes[i])],
            model_version=model_version,
        )
        for i in range(len(times))
    ]


_UPSERT_DECISIONS = """
INSERT INTO labelled_features AS lf
    (transaction_id, tx_datetime, customer_id, terminal_id, features, score, decision, model_version)
SELECT t.id, t.ts::timestamptz, t.customer, t.terminal, t.features::jsonb, t.score, t.decision, t.mv
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::text[])
    AS t(id, ts, customer, terminal, features, score, decision, mv)
ON CONFLICT (transaction_id) DO UPDATE SET
    tx_datetime = EXCLUDED.tx_datetime,
    customer_id = EXCLUDED.customer_id,
    terminal_id = EXCLUDED.terminal_id,
    features = EXCLUDED.features,
    score = EXCLUDED.score,
    decision = EXCLUDED.decision,
    model_version = EXCLUDED.model_version
"""

_UPSERT_LABELS = """
INSERT INTO labelled_features AS lf (transaction_id, is_fraud, labeled_at, label_source)
SELECT t.id, t.is_fraud, t.labeled_at::timestamptz, t.source
FROM unnest(%s::text[], %s::bool[], %s::text[], %s::text[]) AS t(id, is_fraud, labeled_at, source)
ON CONFLICT (transaction_id) DO UPDATE SET
    is_fraud = EXCLUDED.is_fraud,
    labeled_at = EXCLUDED.labeled_at,
    label_source = EXCLUDED.label_source
WHERE lf.labeled_at IS NULL OR EXCLUDED.labeled_at >= lf.labeled_at
"""


def upsert_decisions(conn: psycopg.Connection[Any], records: Iterable[DecisionLike]) -> int:
    """Store (or overwrite) the decision side of each record; returns the rows written.

    A transaction id repeated within ``records`` keeps its last occurrence (PostgreSQL refuses
    to update one row twice in a statement).
    """
    latest: dict[str, DecisionLike] = {}
    for r in records:
        latest[str(r.transaction_id)] = r
    if not latest:
        return 0
    rows = list(latest.values())
    params = (
        list(latest),
        [_ts_text(r.tx_datetime) for r in rows],
        [str(r.customer_id) for r in rows],
        [str(r.terminal_id) for r in rows],
        [_features_json(r.features) for r in rows],
        [float(r.score) for r in rows],
        [str(r.decision) for r in rows],
        [r.model_version for r in rows],
    )
    with conn.transaction():
        cur = conn.execute(_UPSERT_DECISIONS, params)
    return cur.rowcount


def upsert_labels(conn: psycopg.Connection[Any], labels: Iterable[LabelLike]) -> int:
    """Store each label unless a later one (by ``labeled_at``) is already stored.

    Returns the rows written (labels superseded by a stored later one are not counted).
    Within ``labels`` the latest ``labeled_at`` per transaction wins (the last one on ties).
    """
    latest: dict[str, tuple[bool, datetime, str]] = {}
    for label in labels:
        key = str(label.transaction_id)
        at = label.labeled_at
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        if at.tzinfo is None:
            raise ValueError(f"naive labeled_at for transaction {key!r}: an offset is required")
        previous = latest.get(key)
        if previous is None or at >= previous[1]:
            latest[key] = (bool(label.is_fraud), at, str(label.source))
    if not latest:
        return 0
    values = list(latest.values())
    params = (
        list(latest),
        [v[0] for v in values],
        [_ts_text(v[1]) for v in values],
        [v[2] for v in values],
    )
    with conn.transaction():
        cur = conn.execute(_UPSERT_LABELS, params)
    return cur.rowcount


def _utc(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive timestamp {value!r}: an offset is required")
        return value
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def training_frame(
    conn: psycopg.Connection[Any],
    date_from: datetime | date,
    date_to: datetime | date,
    features: Sequence[str] = FEATURE_NAMES,
) -> pd.DataFrame:
    """Labelled rows with ``date_from <= tx_datetime < date_to`` (dates are UTC midnights).

    Only rows that have both a decision and a label. Columns: :data:`ID_COLUMNS`, then one
    float64 column per feature (NaN where missing), then ``is_fraud`` (bool); ordered by
    ``tx_datetime`` then ``transaction_id`` so that a frame, hence a model, is reproducible.
    The feature values are extracted in SQL, so no JSON is parsed in Python.
    """
    names = list(features)
    columns = sql.SQL(", ").join(
        [sql.Identifier(c) for c in ID_COLUMNS]
        + [sql.SQL("(features ->> {})::float8").format(sql.Literal(n)) for n in names]
        + [sql.Identifier("is_fraud")]
    )
    query = sql.SQL(
        "SELECT {} FROM labelled_features"
        " WHERE tx_datetime >= %s AND tx_datetime < %s"
        " AND features IS NOT NULL AND is_fraud IS NOT NULL"
        " ORDER BY tx_datetime, transaction_id"
    ).format(columns)
    rows = conn.execute(query, (_utc(date_from), _utc(date_to))).fetchall()
    frame = pd.DataFrame.from_records(rows, columns=[*ID_COLUMNS, *names, "is_fraud"])
    for n in names:
        frame[n] = pd.to_numeric(frame[n], errors="coerce").astype(np.float64)
    frame["score"] = frame["score"].astype(np.float64)
    frame["is_fraud"] = frame["is_fraud"].astype(bool)
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], utc=True)
    return frame
