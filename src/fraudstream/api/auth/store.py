"""Users, API keys and the session secret in PostgreSQL (migration 0006). All SQL parameterised.

Functions take an open connection (autocommit, as from the API's pool or the CLI).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from fraudstream.api.auth.keys import NewKey
from fraudstream.api.auth.principal import ROLES, Role


@dataclass(frozen=True)
class UserRow:
    name: str
    role: Role
    password_hash: str
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class KeyRow:
    key_id: str
    name: str
    role: Role
    secret_sha256: str
    revoked: bool
    created_at: datetime
    last_used_at: datetime | None


class UserExists(ValueError):
    pass


def _check_role(role: str) -> Role:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def add_user(conn: psycopg.Connection[Any], name: str, role: str, password_hash: str,
             replace: bool = False) -> None:
    """Create a user; with ``replace``, an existing one gets the new role and password."""
    _check_role(role)
    sql = (
        "INSERT INTO api_users (name, role, password_hash) VALUES (%s, %s, %s)"
        " ON CONFLICT (name) DO "
        + ("UPDATE SET role = excluded.role, password_hash = excluded.password_hash, disabled = false"
           if replace else "NOTHING")
    )
    cur = conn.execute(sql, (name, role, password_hash))  # type: ignore[arg-type]  # fixed text
    if cur.rowcount == 0:
        raise UserExists(f"user {name!r} already exists")


def get_user(conn: psycopg.Connection[Any], name: str) -> UserRow | None:
    row = conn.execute(
        "SELECT name, role, password_hash, disabled, created_at FROM api_users WHERE name = %s", (name,)
    ).fetchone()
    return None if row is None else UserRow(*row)


def list_users(conn: psycopg.Connection[Any]) -> list[UserRow]:
    rows = conn.execute(
        "SELECT name, role, password_hash, disabled, created_at FROM api_users ORDER BY name"
    ).fetchall()
    return [UserRow(*r) for r in rows]


def set_disabled(conn: psycopg.Connection[Any], name: str, disabled: bool = True) -> bool:
    cur = conn.execute("UPDATE api_users SET disabled = %s WHERE name = %s", (disabled, name))
    return cur.rowcount == 1


def add_key(conn: psycopg.Connection[Any], key: NewKey, name: str, role: str) -> None:
    _check_role(role)
    conn.execute(
        "INSERT INTO api_keys (key_id, name, role, secret_sha256) VALUES (%s, %s, %s, %s)",
        (key.key_id, name, role, key.secret_sha256),
    )


def get_key(conn: psycopg.Connection[Any], key_id: str) -> KeyRow | None:
    row = conn.execute(
        "SELECT key_id, name, role, secret_sha256, revoked, created_at, last_used_at"
        " FROM api_keys WHERE key_id = %s", (key_id,)
    ).fetchone()
    return None if row is None else KeyRow(*row)


def list_keys(conn: psycopg.Connection[Any]) -> list[KeyRow]:
    rows = conn.execute(
        "SELECT key_id, name, role, secret_sha256, revoked, created_at, last_used_at"
        " FROM api_keys ORDER BY created_at"
    ).fetchall()
    return [KeyRow(*r) for r in rows]


def revoke_key(conn: psycopg.Connection[Any], key_id: str) -> bool:
    cur = conn.execute("UPDATE api_keys SET revoked = true WHERE key_id = %s", (key_id,))
    return cur.rowcount == 1


def touch_key(conn: psycopg.Connection[Any], key_id: str) -> None:
    """Record use, at most once a minute per key (no write per request)."""
    conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE key_id = %s"
        " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", (key_id,)
    )


def session_secret(conn: psycopg.Connection[Any]) -> str:
    """The shared session-signing secret, created by whichever API process asks first."""
    conn.execute(
        "INSERT INTO api_secrets (name, value) VALUES ('session', %s) ON CONFLICT (name) DO NOTHING",
        (secrets.token_urlsafe(48),),
    )
    row = conn.execute("SELECT value FROM api_secrets WHERE name = 'session'").fetchone()
    assert row is not None
    return str(row[0])
