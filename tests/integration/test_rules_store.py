"""The rule-set registry and hot reload against the real PostgreSQL.

Other integration tests may store rule sets in the same database, so these tests use unique
names and check invariants (exactly one active row) rather than absolute contents.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fraudstream.rules import RuleSet, RuleSetError, RuleWatcher, default_ruleset, parse_ruleset, store

from .conftest import Infra

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def restore_active(infra: Infra) -> Iterator[None]:
    """Put back whichever version was active before, so later tests (and detectors running in
    the same session) see the registry as they left it, not these tests' rule sets."""
    with psycopg.connect(infra.settings.dsn, autocommit=True) as c:
        before = store.active_version(c)
        yield
        if before is not None:
            store.activate(c, before)
        else:
            c.execute("UPDATE rule_sets SET active = false WHERE active")


@pytest.fixture
def conn(infra: Infra) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(infra.settings.dsn, autocommit=True) as c:
        yield c


def make(name: str, threshold: float = 100) -> RuleSet:
    return parse_ruleset(
        {
            "name": name,
            "description": "integration test",
            "rules": [
                {"id": "BIG", "condition": f"TX_AMOUNT > {threshold}", "action": {"score": 0.5}},
                {"id": "HUGE", "condition": "TX_AMOUNT > 5000", "action": {"decision": "decline"}},
            ],
        }
    )


def active_rows(conn: psycopg.Connection[Any]) -> list[int]:
    return [r[0] for r in conn.execute("SELECT version FROM rule_sets WHERE active").fetchall()]


def test_load_two_rule_sets_exactly_one_active(conn: psycopg.Connection[Any], unique: str) -> None:
    first, second = make(f"first-{unique}"), make(f"second-{unique}", 200)
    v1 = store.load_ruleset(conn, first, created_by="tester")
    assert active_rows(conn) == [v1]
    v2 = store.load_ruleset(conn, second, created_by="tester")
    assert v2 > v1
    assert active_rows(conn) == [v2]

    active = store.active_ruleset(conn)
    assert active is not None and active == (v2, second)
    assert store.active_version(conn) == v2
    assert store.get_ruleset(conn, v1) == first

    row = conn.execute(
        "SELECT name, checksum, created_by, body->>'name' FROM rule_sets WHERE version = %s", (v1,)
    ).fetchone()
    assert row == (first.name, first.checksum(), "tester", first.name)

    listed = {info.version: info for info in store.list_rulesets(conn)}
    assert listed[v1].active is False and listed[v2].active is True
    assert listed[v2].n_rules == 2 and listed[v2].name == second.name
    versions = [info.version for info in store.list_rulesets(conn)]
    assert versions == sorted(versions, reverse=True)


def test_load_without_activation_then_activate_and_roll_back(
    conn: psycopg.Connection[Any], unique: str
) -> None:
    base = store.load_ruleset(conn, make(f"base-{unique}"))
    staged = store.load_ruleset(conn, make(f"staged-{unique}"), activate=False)
    assert active_rows(conn) == [base]
    store.activate(conn, staged)
    assert active_rows(conn) == [staged]
    store.activate(conn, staged)  # idempotent
    assert active_rows(conn) == [staged]
    store.activate(conn, base)  # roll back
    assert active_rows(conn) == [base]
    with pytest.raises(RuleSetError, match="no rule set version"):
        store.activate(conn, 10**9)
    assert active_rows(conn) == [base]


def test_invalid_rule_set_is_never_stored(conn: psycopg.Connection[Any], unique: str) -> None:
    before = conn.execute("SELECT count(*) FROM rule_sets").fetchone()
    bad = {"name": f"bad-{unique}", "rules": [{"id": "X", "condition": "NOPE > 1", "action": {"score": 1}}]}
    with pytest.raises(RuleSetError, match="unknown feature 'NOPE'"):
        store.load_ruleset(conn, bad)
    assert conn.execute("SELECT count(*) FROM rule_sets").fetchone() == before


def test_ensure_default(infra: Infra, conn: psycopg.Connection[Any], unique: str) -> None:
    current = store.load_ruleset(conn, make(f"current-{unique}"))
    count = conn.execute("SELECT count(*) FROM rule_sets").fetchone()
    assert store.ensure_default(conn) == current  # something is active: nothing loaded
    assert conn.execute("SELECT count(*) FROM rule_sets").fetchone() == count

    # With nothing active (inside a transaction rolled back at the end, so other sessions and
    # tests never see the registry without an active rule set), the default gets loaded.
    with psycopg.connect(infra.settings.dsn) as tx:
        tx.execute("UPDATE rule_sets SET active = false WHERE active")
        version = store.ensure_default(tx, created_by="ensure-test")
        active = store.active_ruleset(tx)
        assert active is not None and active[0] == version and active[1] == default_ruleset()
        assert store.ensure_default(tx) == version
        tx.rollback()
    assert active_rows(conn) == [current]


def test_concurrent_activations_leave_exactly_one_active(
    infra: Infra, conn: psycopg.Connection[Any], unique: str
) -> None:
    versions = [store.load_ruleset(conn, make(f"race-{i}-{unique}"), activate=False) for i in range(4)]
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            with psycopg.connect(infra.settings.dsn, autocommit=True) as c:
                for i in range(20):
                    store.activate(c, versions[(i + offset) % len(versions)])
        except BaseException as exc:  # reported below, with the thread's traceback lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    rows = active_rows(conn)
    assert len(rows) == 1 and rows[0] in versions


def test_watcher_picks_up_a_new_active_version_within_5s(
    infra: Infra, conn: psycopg.Connection[Any], unique: str
) -> None:
    v1 = store.load_ruleset(conn, make(f"watch-1-{unique}"))
    with RuleWatcher(infra.settings.dsn, interval_s=0.5) as watcher:
        first = watcher.poll()
        assert first is not None and first[0] == v1 and first[1].name == f"watch-1-{unique}"
        assert watcher.poll(force=True) is None  # unchanged

        def wait_for_change() -> tuple[float, tuple[int, Any]]:
            started = time.monotonic()
            while time.monotonic() - started < 10:
                got = watcher.poll()
                if got is not None:
                    return time.monotonic() - started, got
                time.sleep(0.05)
            raise AssertionError("the watcher did not see the new version within 10 s")

        v2 = store.load_ruleset(conn, make(f"watch-2-{unique}", 300))
        elapsed, (version, compiled) = wait_for_change()
        assert version == v2 and compiled.name == f"watch-2-{unique}"
        assert elapsed < 5.0

        store.activate(conn, v1)  # a roll back is picked up the same way
        elapsed, (version, compiled) = wait_for_change()
        assert version == v1 and elapsed < 5.0
        assert watcher.current is not None and watcher.current[0] == v1
