"""The detector's database login: a LOGIN role that is a member of ``fraudstream_detector``.

The group role and its grants come with migration ``0004_detector_role.sql``; this module makes
(or updates) the login that a deployment puts in ``FRAUDSTREAM_DETECTOR_DATABASE_URL``. The
password is hashed client-side into a SCRAM verifier, so the plaintext never reaches the server
(nor its statement log).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

DETECTOR_GROUP = "fraudstream_detector"


class RoleError(ValueError):
    """The requested login cannot safely become the detector's."""


def login_of(dsn: str) -> tuple[str, str]:
    """``(user, password)`` of a ``postgresql://`` URL or a ``key=value`` conninfo string."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return unquote(parts.username or ""), unquote(parts.password or "")
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return str(info.get("user") or ""), str(info.get("password") or "")


def grant_detector(admin_dsn: str, user: str, password: str) -> str:
    """Create or update ``user`` as a password login that only holds the detector group's
    privileges; returns ``"created"`` or ``"updated"``. Refuses a privileged existing role
    (or the connecting role itself): it would keep powers the detector must not have."""
    if not user or not password:
        raise RoleError("the detector login needs a user name and a password")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if user == conn.info.user:
            raise RoleError(f"{user!r} is the administrative role; the detector needs its own")
        verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256")
        attrs = sql.SQL(
            "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
        ).format(sql.Literal(verifier.decode()))
        with conn.transaction():
            existing = _role(conn, user)
            if existing is not None and existing["rolsuper"]:
                raise RoleError(f"{user!r} is a superuser; the detector needs a role of its own")
            statement = sql.SQL("ALTER ROLE {} {}" if existing is not None else "CREATE ROLE {} {}")
            conn.execute(statement.format(sql.Identifier(user), attrs))
            conn.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(DETECTOR_GROUP), sql.Identifier(user))
            )
        return "updated" if existing is not None else "created"


def _role(conn: psycopg.Connection[Any], name: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    return None if row is None else {"rolsuper": bool(row[0])}


def provision_detector(admin_dsn: str, detector_dsn: str) -> str | None:
    """Make the login of ``detector_dsn`` (``grant_detector``); None when it is the
    administrative login itself (no separate detector role configured)."""
    user, password = login_of(detector_dsn)
    if user == login_of(admin_dsn)[0]:
        return None
    return grant_detector(admin_dsn, user, password)
