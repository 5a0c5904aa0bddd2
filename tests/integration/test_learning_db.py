"""Model registry and labelled feature store against PostgreSQL, in a scratch database.

Uses the real PostgreSQL of the test session: a throw-away database is created, migrated
(0001 and 0002) and dropped. Skipped when no server answers there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import numpy as np
import pandas as pd
import psycopg
import pytest

from fraudstream.contracts.messages import Label
from fraudstream.db.migrate import migrate
from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.learning import ModelWatcher, registry, train_model
from fraudstream.learning.feature_store import (
    DecisionRecord,
    decision_records,
    training_frame,
    upsert_decisions,
    upsert_labels,
)
from fraudstream.learning.train import TrainedModel

from .conftest import Infra

pytestmark = pytest.mark.integration


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="module")
def scratch_dsn(infra: Infra) -> Iterator[str]:
    admin_dsn = infra.settings.dsn
    admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3)
    name = f"learn_scratch_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        try:
            dsn = _with_database(admin_dsn, name)
            migrate(dsn)
            yield dsn
        finally:
            admin.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )


@pytest.fixture
def conn(scratch_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(scratch_dsn, autocommit=True) as c:
        c.execute("TRUNCATE models, labelled_features RESTART IDENTITY")
        yield c


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(800, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    frame["is_fraud"] = frame[FEATURE_NAMES[0]] + rng.normal(size=800) > 2
    return train_model(frame, FEATURE_NAMES, params={"num_threads": 1}, num_boost_round=10)


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_register_promote_and_load(conn: psycopg.Connection[Any], model: TrainedModel) -> None:
    assert registry.active_model(conn) is None and registry.active_version(conn) is None
    v1 = registry.register(
        conn, model, {"average_precision": 0.5, "auc_roc": float("nan")}, T0, T0 + timedelta(days=7)
    )
    assert v1 == 1 and model.version == "1"
    assert registry.active_model(conn) is None  # registered, not promoted
    registry.promote(conn, v1)
    active = registry.active_model(conn)
    assert active is not None and active.version == "1" and active.features == FEATURE_NAMES
    assert active.score_offset == pytest.approx(model.score_offset)
    x = {n: np.linspace(-2, 2, 50) for n in FEATURE_NAMES}
    np.testing.assert_array_equal(active.predict(x)[0], model.predict(x)[0])

    v2 = registry.register(conn, model, {"average_precision": 0.6}, T0, T0 + timedelta(days=8), promote=True)
    assert registry.active_version(conn) == v2 == 2
    assert registry.active_metrics(conn) == {"average_precision": 0.6}
    infos = registry.list_models(conn)
    assert [i.version for i in infos] == [2, 1] and [i.active for i in infos] == [True, False]
    assert infos[1].metrics == {"average_precision": 0.5, "auc_roc": None}  # NaN stored as null
    assert infos[0].trained_to == T0 + timedelta(days=8) and infos[0].promoted_at is not None
    assert infos[1].params["lightgbm"]["objective"] == "binary"

    registry.promote(conn, v1)  # rollback = promoting an older version
    assert registry.active_version(conn) == 1
    assert conn.execute("SELECT count(*) FROM models WHERE active").fetchone() == (1,)
    with pytest.raises(LookupError):
        registry.promote(conn, 99)
    assert registry.get_model(conn, 99) is None
    conn.execute("UPDATE models SET artifact = %s WHERE version = 2", (b"corrupt",))
    with pytest.raises(ValueError):
        registry.get_model(conn, 2)


def test_watcher_against_the_database(
    scratch_dsn: str, conn: psycopg.Connection[Any], model: TrainedModel
) -> None:
    with ModelWatcher(scratch_dsn, interval_s=0.0) as watcher:
        assert watcher.poll() is None
        registry.register(conn, model, {}, None, None, promote=True)
        loaded = watcher.poll()
        assert loaded is not None and loaded.version == "1"
        assert watcher.poll() is None
        v2 = registry.register(conn, model, {}, None, None)
        registry.promote(conn, v2)
        again = watcher.poll()
        assert again is not None and again.version == "2"


def _decision(i: int, t: datetime, **features: float) -> DecisionRecord:
    values = {n: float(i) for n in FEATURE_NAMES} | features
    return DecisionRecord(str(i), t, f"c{i % 3}", f"t{i}", values, 0.1 * (i % 10), "approve", "1")


def _label(i: int, is_fraud: bool, at: datetime, source: str = "simulator") -> Label:
    return Label(transaction_id=str(i), is_fraud=is_fraud, labeled_at=at, source=source)  # type: ignore[arg-type]


def test_feature_store_label_before_or_after_decision(conn: psycopg.Connection[Any]) -> None:
    # 1: decision then label; 2: label then decision; 3: decision only; 4: label only.
    assert upsert_decisions(conn, [_decision(1, T0)]) == 1
    assert upsert_labels(conn, [_label(1, True, T0 + timedelta(days=7)), _label(2, False, T0)]) == 2
    assert upsert_decisions(conn, [_decision(2, T0 + timedelta(hours=1)), _decision(3, T0)]) == 2
    assert upsert_labels(conn, [_label(4, True, T0)]) == 1
    frame = training_frame(conn, date(2026, 1, 1), date(2026, 1, 2))
    assert frame.transaction_id.tolist() == ["1", "2"]
    assert frame.is_fraud.tolist() == [True, False]
    assert list(frame.columns) == [
        "transaction_id",
        "tx_datetime",
        "customer_id",
        "terminal_id",
        "score",
        "model_version",
        *FEATURE_NAMES,
        "is_fraud",
    ]
    assert frame[FEATURE_NAMES].dtypes.eq(np.float64).all()
    assert frame.loc[1, FEATURE_NAMES[3]] == 2.0 and frame.loc[0, "tx_datetime"] == pd.Timestamp(T0)
    row = conn.execute(
        "SELECT label_source, decision FROM labelled_features WHERE transaction_id = '1'"
    ).fetchone()
    assert row == ("simulator", "approve")
    # The window is half-open, and bounds may be datetimes.
    assert training_frame(
        conn, T0 + timedelta(minutes=1), T0 + timedelta(days=1)
    ).transaction_id.tolist() == ["2"]
    assert training_frame(conn, date(2026, 1, 2), date(2026, 1, 3)).empty


def test_feature_store_later_label_wins_and_replays(conn: psycopg.Connection[Any]) -> None:
    upsert_decisions(conn, [_decision(1, T0)])
    upsert_labels(conn, [_label(1, False, T0 + timedelta(days=1))])
    # An analyst verdict later overturns it; replaying the older label changes nothing.
    assert upsert_labels(conn, [_label(1, True, T0 + timedelta(days=3), "analyst")]) == 1
    assert upsert_labels(conn, [_label(1, False, T0 + timedelta(days=1))]) == 0
    # Within one batch: the latest labeled_at wins whatever the order.
    upsert_labels(
        conn,
        [
            _label(2, True, T0 + timedelta(days=5), "chargeback"),
            _label(2, False, T0 + timedelta(days=2)),
        ],
    )
    rows = conn.execute(
        "SELECT transaction_id, is_fraud, label_source FROM labelled_features ORDER BY transaction_id"
    ).fetchall()
    assert rows == [("1", True, "analyst"), ("2", True, "chargeback")]
    # A replayed decision overwrites its own columns only.
    upsert_decisions(conn, [_decision(1, T0), _decision(1, T0)])
    assert conn.execute("SELECT is_fraud FROM labelled_features WHERE transaction_id = '1'").fetchone() == (
        True,
    )
    with pytest.raises(ValueError, match="naive"):
        upsert_labels(conn, [msgspec.structs.replace(_label(3, True, T0), labeled_at=datetime(2026, 1, 1))])
    assert upsert_decisions(conn, []) == 0 and upsert_labels(conn, []) == 0


def test_feature_store_nan_features_and_batch_records(conn: psycopg.Connection[Any]) -> None:
    n = 4
    features = {name: np.arange(n, dtype=np.float64) for name in FEATURE_NAMES}
    features[FEATURE_NAMES[5]] = np.array([np.nan, 1.0, np.inf, 3.0])
    t_ms = np.array([int(T0.timestamp() * 1000) + i * 60_000 for i in range(n)], dtype=np.int64)
    records = decision_records(
        ["a", "b", "c", "d"],
        t_ms,
        ["c1", "c1", "c2", "c3"],
        ["t1", "t2", "t3", "t4"],
        features,
        np.array([0.1, 0.6, 0.9, 0.0]),
        np.array([0, 1, 2, 0], dtype=np.int8),
        "3",
    )
    assert [r.decision for r in records] == ["approve", "review", "decline", "approve"]
    assert records[1].tx_datetime == T0 + timedelta(minutes=1)
    assert upsert_decisions(conn, records) == 4
    upsert_labels(conn, [_label(i, i == "c", T0 + timedelta(days=7)) for i in "abcd"])  # type: ignore[arg-type]
    frame = training_frame(conn, T0, T0 + timedelta(days=1))
    assert frame.transaction_id.tolist() == ["a", "b", "c", "d"]
    col = frame[FEATURE_NAMES[5]].tolist()
    assert np.isnan(col[0]) and col[1] == 1.0 and np.isnan(col[2]) and col[3] == 3.0
    assert frame.score.tolist() == [0.1, 0.6, 0.9, 0.0] and frame.model_version.tolist() == ["3"] * 4
    assert frame.is_fraud.tolist() == [False, False, True, False]
    # The frame feeds training directly.
    assert train_model(
        frame, FEATURE_NAMES, params={"num_threads": 1, "min_data_in_leaf": 1}, num_boost_round=2
    )
