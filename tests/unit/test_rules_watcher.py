"""RuleWatcher against an in-memory registry (the real database is in the integration tests)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fraudstream.rules import RuleSet, RuleWatcher, parse_ruleset
from fraudstream.rules import watcher as watcher_module


class FakeConn:
    def __init__(self) -> None:
        self.autocommit = True
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeRegistry:
    """Stands in for ``fraudstream.rules.store``'s two read functions."""

    def __init__(self) -> None:
        self.bodies: dict[int, RuleSet] = {}
        self.active: int | None = None
        self.version_queries = 0
        self.body_queries = 0
        self.fail = False
        self.connections: list[FakeConn] = []

    def add(self, ruleset: RuleSet, activate: bool = True) -> int:
        version = len(self.bodies) + 1
        self.bodies[version] = ruleset
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

    def get_ruleset(self, conn: Any, version: int) -> RuleSet | None:
        self.body_queries += 1
        return self.bodies.get(version)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ruleset(name: str, condition: str = "TX_AMOUNT > 100") -> RuleSet:
    return parse_ruleset(
        {"name": name, "rules": [{"id": "R", "condition": condition, "action": {"score": 0.5}}]}
    )


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    reg = FakeRegistry()
    monkeypatch.setattr(watcher_module.store, "active_version", reg.active_version)
    monkeypatch.setattr(watcher_module.store, "get_ruleset", reg.get_ruleset)
    return reg


def test_first_poll_returns_active_then_only_changes(registry: FakeRegistry) -> None:
    clock = Clock()
    v1 = registry.add(ruleset("one"))
    w = RuleWatcher(registry.connect, interval_s=2.0, clock=clock)
    assert w.current is None
    got = w.poll()
    assert got is not None and got[0] == v1 and got[1].name == "one"
    assert w.current == got
    clock.now += 2.5
    assert w.poll() is None  # unchanged
    assert registry.body_queries == 1  # the body is only fetched on a change

    v2 = registry.add(ruleset("two"))
    clock.now += 2.0
    got = w.poll()
    assert got is not None and got[0] == v2 and got[1].name == "two"
    assert w.version == v2


def test_polls_the_database_at_most_every_interval(registry: FakeRegistry) -> None:
    clock = Clock()
    registry.add(ruleset("one"))
    w = RuleWatcher(registry.connect, interval_s=2.0, clock=clock)
    w.poll()
    registry.add(ruleset("two"))
    for _ in range(100):
        clock.now += 0.01
        assert w.poll() is None
    assert registry.version_queries == 1
    clock.now += 1.5
    got = w.poll()
    assert got is not None and got[1].name == "two"
    assert registry.version_queries == 2
    assert w.poll(force=True) is None and registry.version_queries == 3


def test_rollback_to_an_older_version_is_a_change(registry: FakeRegistry) -> None:
    clock = Clock()
    v1 = registry.add(ruleset("one"))
    registry.add(ruleset("two"))
    w = RuleWatcher(registry.connect, interval_s=0.5, clock=clock)
    assert w.poll() is not None
    registry.active = v1
    clock.now += 0.5
    got = w.poll()
    assert got is not None and got[0] == v1


def test_no_active_rule_set(registry: FakeRegistry) -> None:
    w = RuleWatcher(registry.connect, clock=Clock())
    assert w.poll() is None and w.current is None


def test_rule_set_that_does_not_compile_here_keeps_the_previous_one(registry: FakeRegistry) -> None:
    clock = Clock()
    registry.add(ruleset("good"))
    w = RuleWatcher(registry.connect, interval_s=1.0, clock=clock, features=["TX_AMOUNT"])
    first = w.poll()
    assert first is not None
    registry.add(ruleset("needs-night", "TX_DURING_NIGHT == 1"))  # valid by default, not here
    clock.now += 1
    assert w.poll() is None
    assert w.current == first
    clock.now += 1
    assert w.poll() is None
    assert registry.body_queries == 2  # the rejected version is not fetched again
    v3 = registry.add(ruleset("fixed"))
    clock.now += 1
    got = w.poll()
    assert got is not None and got[0] == v3


def test_database_errors_keep_rules_and_reconnect(registry: FakeRegistry) -> None:
    clock = Clock()
    registry.add(ruleset("one"))
    w = RuleWatcher(registry.connect, interval_s=1.0, clock=clock)
    first = w.poll()
    registry.fail = True
    clock.now += 1
    assert w.poll() is None
    assert w.current == first
    assert registry.connections[0].closed
    registry.fail = False
    registry.add(ruleset("two"))
    clock.now += 1
    got = w.poll()
    assert got is not None and got[1].name == "two"
    assert len(registry.connections) == 2
    w.close()
    assert registry.connections[1].closed


def test_connection_failure_is_not_fatal(registry: FakeRegistry) -> None:
    def refuse() -> Any:
        raise psycopg.OperationalError("connection refused")

    w = RuleWatcher(refuse, clock=Clock())
    assert w.poll() is None


def test_dsn_does_not_connect_until_polled() -> None:
    w = RuleWatcher("postgresql://nobody@invalid.invalid:1/none", interval_s=1.0)
    assert w.current is None
    w.close()
