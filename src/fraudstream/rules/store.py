"""The rule-set registry in PostgreSQL (table ``rule_sets``).

Every load inserts a new immutable version (``body`` jsonb, sha256 ``checksum``); exactly one
version is active, guaranteed by the unique partial index on ``active``. Switching the active
version is two updates in one transaction, serialised by a transaction-level advisory lock:
without the lock two concurrent activations could both deactivate the same old row and the
second would fail on the unique index instead of simply winning.

Functions take an open :class:`psycopg.Connection` and manage their own transaction with
``conn.transaction()``: on an autocommit connection (recommended) they commit on return; inside
a transaction the caller already opened they become a savepoint and the caller commits.
All SQL is parameterised.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fraudstream.rules.engine import default_ruleset, parse_ruleset
from fraudstream.rules.model import RuleSet, RuleSetError

__all__ = [
    "LOCK_ID",
    "RuleSetInfo",
    "activate",
    "active_ruleset",
    "active_version",
    "ensure_default",
    "get_ruleset",
    "list_rulesets",
    "load_ruleset",
]

LOCK_ID = 0x72756C6573  # "rules": serialises activations across processes


@dataclass(frozen=True)
class RuleSetInfo:
    """One row of the registry, without the body."""

    version: int
    name: str
    checksum: str
    active: bool
    created_at: datetime
    created_by: str | None
    n_rules: int


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))


def _switch_active(conn: psycopg.Connection[Any], version: int) -> None:
    """Make ``version`` the only active row; the caller holds the lock, inside a transaction."""
    conn.execute("UPDATE rule_sets SET active = false WHERE active AND version <> %s", (version,))
    conn.execute("UPDATE rule_sets SET active = true WHERE version = %s AND NOT active", (version,))


def _insert(conn: psycopg.Connection[Any], ruleset: RuleSet, created_by: str | None) -> int:
    row = conn.execute(
        "INSERT INTO rule_sets (name, body, checksum, created_by) VALUES (%s, %s, %s, %s) RETURNING version",
        (ruleset.name, Jsonb(ruleset.body()), ruleset.checksum(), created_by),
    ).fetchone()
    assert row is not None
    return int(row[0])


def load_ruleset(
    conn: psycopg.Connection[Any],
    ruleset: RuleSet | Mapping[str, Any] | str,
    created_by: str | None = None,
    activate: bool = True,
    features: Collection[str] | None = None,
) -> int:
    """Validate ``ruleset``, store it as a new version and (by default) make it the active one.

    Validation (including compiling every condition against ``features``) happens before
    anything is written, so a bad rule set never reaches the detectors. The insert and the
    activation are one transaction: readers see either the old or the new active version.
    Returns the new version number.
    """
    validated = parse_ruleset(ruleset, features)
    with conn.transaction():
        if activate:
            _lock(conn)
        version = _insert(conn, validated, created_by)
        if activate:
            _switch_active(conn, version)
    return version


def activate(conn: psycopg.Connection[Any], version: int) -> None:
    """Make a stored version the active one (rolling back is activating an older version)."""
    with conn.transaction():
        _lock(conn)
        row = conn.execute("SELECT 1 FROM rule_sets WHERE version = %s", (version,)).fetchone()
        if row is None:
            raise RuleSetError(f"no rule set version {version}")
        _switch_active(conn, version)


def active_version(conn: psycopg.Connection[Any]) -> int | None:
    """The active version number only: a cheap query for pollers."""
    row = conn.execute("SELECT version FROM rule_sets WHERE active").fetchone()
    return None if row is None else int(row[0])


def get_ruleset(conn: psycopg.Connection[Any], version: int) -> RuleSet | None:
    """A stored version's rule set (re-validated as a model, conditions not compiled)."""
    row = conn.execute("SELECT body FROM rule_sets WHERE version = %s", (version,)).fetchone()
    return None if row is None else RuleSet.model_validate(row[0])


def active_ruleset(conn: psycopg.Connection[Any]) -> tuple[int, RuleSet] | None:
    """``(version, rule set)`` of the active version, or None when none is active."""
    row = conn.execute("SELECT version, body FROM rule_sets WHERE active").fetchone()
    return None if row is None else (int(row[0]), RuleSet.model_validate(row[1]))


def list_rulesets(conn: psycopg.Connection[Any]) -> list[RuleSetInfo]:
    """Every stored version, newest first."""
    rows = conn.execute(
        "SELECT version, name, checksum, active, created_at, created_by,"
        " coalesce(jsonb_array_length(body -> 'rules'), 0)"
        " FROM rule_sets ORDER BY version DESC"
    ).fetchall()
    return [RuleSetInfo(int(r[0]), r[1], r[2], bool(r[3]), r[4], r[5], int(r[6])) for r in rows]


def ensure_default(
    conn: psycopg.Connection[Any],
    created_by: str | None = "fraudstream",
    features: Collection[str] | None = None,
) -> int:
    """Load and activate the shipped default rule set unless some version is already active.

    Returns the active version. Safe when several detectors start at once: the check and the
    insert run under the same advisory lock, so only one of them loads the default.
    """
    ruleset = default_ruleset(features)
    with conn.transaction():
        _lock(conn)
        current = active_version(conn)
        if current is not None:
            return current
        version = _insert(conn, ruleset, created_by)
        _switch_active(conn, version)
    return version
