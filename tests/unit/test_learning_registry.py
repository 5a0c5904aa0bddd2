"""Promotion policy and ModelWatcher against an in-memory registry (pure: no database)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest

from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.learning import ModelWatcher, TrainedModel, should_promote, train_model
from fraudstream.learning import watcher as watcher_module


def test_should_promote() -> None:
    assert should_promote({"average_precision": 0.1}, None)
    assert should_promote({"average_precision": 0.6}, {"average_precision": 0.5})
    assert not should_promote({"average_precision": 0.5}, {"average_precision": 0.5})
    assert not should_promote({"average_precision": 0.4}, {"average_precision": 0.5, "auc_roc": 0.1})
    assert should_promote({"average_precision": 0.4}, {"average_precision": None})
    assert should_promote({"average_precision": 0.4}, {})
    assert not should_promote({"average_precision": None}, None)
    assert not should_promote({"average_precision": math.nan}, {"average_precision": 0.1})
    assert not should_promote({"auc_roc": 0.99}, None)
    assert should_promote({"auc_roc": 0.9}, {"auc_roc": 0.8}, metric="auc_roc")


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(500, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    frame["is_fraud"] = frame[FEATURE_NAMES[0]] > 1.5
    return train_model(frame, FEATURE_NAMES, params={"num_threads": 1}, num_boost_round=3)


class FakeConn:
    def __init__(self) -> None:
        self.autocommit = True
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeRegistry:
    """Stands in for ``fraudstream.learning.registry``'s two read functions."""

    def __init__(self, model: TrainedModel) -> None:
        self.template = model
        self.stored: dict[int, Any] = {}
        self.active: int | None = None
        self.version_queries = 0
        self.model_queries = 0
        self.fail = False
        self.connections: list[FakeConn] = []

    def add(self, artifact: Any = None, activate: bool = True) -> int:
        version = len(self.stored) + 1
        self.stored[version] = artifact if artifact is not None else self.template.model_string()
        if activate:
            self.active = version
        return version

    def connect(self) -> FakeConn:
        conn = FakeConn()
        self.connections.append(conn)
        return conn

    def active_version(self, conn: Any) -> int | None:
        assert not conn.closed
        if self.fail:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        self.version_queries += 1
        return self.active

    def get_model(self, conn: Any, version: int) -> TrainedModel | None:
        self.model_queries += 1
        stored = self.stored.get(version)
        if stored is None:
            return None
        if isinstance(stored, list):  # a feature list: a valid model needing those features
            return TrainedModel(self.template.booster, stored, version=str(version))
        return TrainedModel.from_model_string(stored, FEATURE_NAMES, version=str(version))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, model: TrainedModel) -> FakeRegistry:
    reg = FakeRegistry(model)
    monkeypatch.setattr(watcher_module.registry, "active_version", reg.active_version)
    monkeypatch.setattr(watcher_module.registry, "get_model", reg.get_model)
    return reg


def test_first_poll_returns_active_then_only_changes(registry: FakeRegistry) -> None:
    clock = Clock()
    watcher = ModelWatcher(registry.connect, interval_s=1.0, clock=clock)
    assert watcher.poll() is None and watcher.current is None  # nothing active yet
    registry.add()
    assert watcher.poll() is None  # within the interval: no query
    assert registry.version_queries == 1
    clock.now += 1.0
    first = watcher.poll()
    assert first is not None and first.version == "1" and watcher.current is first
    clock.now += 1.0
    assert watcher.poll() is None  # unchanged: one cheap query, no load
    assert registry.model_queries == 1
    registry.add()
    second = watcher.poll(force=True)
    assert second is not None and second.version == "2" and watcher.version == 2
    assert registry.model_queries == 2


def test_errors_keep_the_previous_model(registry: FakeRegistry) -> None:
    clock = Clock()
    watcher = ModelWatcher(registry.connect, clock=clock)
    registry.add()
    first = watcher.poll()
    assert first is not None
    registry.fail = True
    clock.now += 5
    assert watcher.poll() is None and watcher.current is first
    assert registry.connections[0].closed  # dropped after the error, reconnects next time
    registry.fail = False
    registry.add()
    clock.now += 5
    second = watcher.poll()
    assert second is not None and second.version == "2" and len(registry.connections) == 2


def test_bad_artifact_is_rejected_once(registry: FakeRegistry) -> None:
    clock = Clock()
    watcher = ModelWatcher(registry.connect, clock=clock)
    registry.add()
    first = watcher.poll()
    registry.add("garbage")
    for _ in range(3):
        clock.now += 5
        assert watcher.poll() is None
    assert watcher.current is first and watcher.version == 1
    assert registry.model_queries == 2  # the bad version was fetched once only
    registry.add()
    clock.now += 5
    third = watcher.poll()
    assert third is not None and third.version == "3"


def test_model_needing_unknown_features_is_rejected(registry: FakeRegistry) -> None:
    watcher = ModelWatcher(registry.connect, clock=Clock(), features=FEATURE_NAMES)
    registry.add([*FEATURE_NAMES, "NOT_COMPUTED_HERE"])
    assert watcher.poll() is None and watcher.current is None
    registry.add()
    assert watcher.poll(force=True) is not None


def test_vanished_version_and_close(registry: FakeRegistry) -> None:
    watcher = ModelWatcher(registry.connect, clock=Clock())
    registry.active = 42  # active row deleted between the two queries
    assert watcher.poll() is None and watcher.current is None
    with watcher:
        registry.add()
        assert watcher.poll(force=True) is not None
    assert registry.connections[-1].closed
