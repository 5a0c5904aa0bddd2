"""The detector's least-privilege PostgreSQL role, against the real server.

Every detector of the integration suite already runs as this role (see ``conftest``); here
each privilege it must not have is tried and must fail with a permission error, and a detector
is watched deciding and storing rows as that role.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import errors, sql

from fraudstream.db.migrate import migrate
from fraudstream.db.roles import RoleError, grant_detector, provision_detector
from fraudstream.generator.command import to_contract_frame
from fraudstream.generator.handbook import generate_dataset
from fraudstream.sinks.postgres import SuspiciousRow, SuspiciousSink

from .conftest import ROOT, TEST_DETECTOR_LOGIN, Pipeline
from .streams import decisions, feed, read_topic

pytestmark = pytest.mark.integration

FORBIDDEN = [
    "DELETE FROM fraudulent_transactions",
    "UPDATE fraudulent_transactions SET review_status = 'legitimate'",
    "SELECT * FROM fraudulent_transactions",
    "SELECT score, customer_id FROM fraudulent_transactions",
    "TRUNCATE fraudulent_transactions",
    "INSERT INTO fraudulent_transactions (transaction_id, tx_datetime, customer_id, terminal_id,"
    " tx_amount, score, decision, review_status) VALUES ('x', now(), 'c', 't', 1, 0.9, 'decline',"
    " 'legitimate')",  # a verdict column is not the detector's to write
    "DROP TABLE rule_sets",
    "ALTER TABLE fraudulent_transactions ADD COLUMN x int",
    "CREATE TABLE detector_owned (x int)",
    "UPDATE rule_sets SET active = false",
    "INSERT INTO rule_sets (name, body, checksum) VALUES ('x', '{}', 'x')",
    "DELETE FROM models",
    "UPDATE models SET active = true",
    "SELECT created_by FROM rule_sets",
    "SELECT metrics FROM models",
    "SELECT * FROM labelled_features",
    "INSERT INTO labelled_features (transaction_id) VALUES ('x')",
    "SELECT * FROM schema_migrations",
    "DELETE FROM schema_migrations",
]

ALLOWED = [
    "SELECT version FROM rule_sets WHERE active",
    "SELECT body FROM rule_sets WHERE version = 1",
    "SELECT version FROM models WHERE active",
    "SELECT version, kind, features, params, artifact FROM models WHERE active",
]


def _row(tid: str) -> SuspiciousRow:
    now = datetime.now(UTC)
    return SuspiciousRow(
        tid, now, "c1", "t1", 12.5, "EUR", "card", None, "FR", None, None, 0.93, "decline",
        ["amount_spike"], {"f": 1.0}, None, "1", now, 0, 7,
    )


def test_detector_role_cannot_do_anything_but_its_job(pipeline: Pipeline) -> None:
    detector_dsn = pipeline.settings.detector_dsn
    with psycopg.connect(detector_dsn, autocommit=True) as conn:
        assert conn.info.user == TEST_DETECTOR_LOGIN[0]
        for statement in FORBIDDEN:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)  # type: ignore[arg-type]
        for statement in ALLOWED:
            conn.execute(statement)  # type: ignore[arg-type]
        with pytest.raises(errors.InsufficientPrivilege):
            migrate(detector_dsn)  # no DDL, not even the migration table

    sink = SuspiciousSink(detector_dsn)
    try:
        assert sink.write([_row("sec-1"), _row("sec-2")]) == 2
        assert sink.write([_row("sec-1")]) == 0  # ON CONFLICT works with the key column alone
    finally:
        sink.close()
    with psycopg.connect(pipeline.settings.dsn) as conn:
        rows = conn.execute(
            "SELECT transaction_id, review_status FROM fraudulent_transactions ORDER BY 1"
        ).fetchall()
    assert rows == [("sec-1", "open"), ("sec-2", "open")]


def test_migrations_and_grants_are_idempotent(pipeline: Pipeline) -> None:
    admin = pipeline.settings.dsn
    assert migrate(admin) == []
    assert provision_detector(admin, pipeline.settings.detector_dsn) == "updated"
    assert provision_detector(admin, admin) is None  # no separate login configured: nothing
    with pytest.raises(RoleError):
        grant_detector(admin, "admin", "whatever")  # never demote or re-password the owner
    with psycopg.connect(admin) as conn:
        group = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles"
            " WHERE rolname = 'fraudstream_detector'"
        ).fetchone()
        login = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit FROM pg_roles"
            " WHERE rolname = %s", (TEST_DETECTOR_LOGIN[0],)
        ).fetchone()
    assert group == (False, False, False, False)
    assert login == (True, False, False, False, True)


def test_wrong_detector_password_is_refused(pipeline: Pipeline) -> None:
    wrong = pipeline.settings.detector_dsn.replace(TEST_DETECTOR_LOGIN[1], "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)


def test_detector_decides_and_stores_as_its_role(pipeline: Pipeline) -> None:
    _, _, tx = generate_dataset(200, 400, 15, "2018-04-01")
    frame = to_contract_frame(tx)
    frame = frame[frame["tx_amount"] >= 0.005]
    feed(pipeline.settings, frame, label_delay=None)
    # Flag a predictable share so rows do reach PostgreSQL whatever the model says.
    worker = pipeline.start_detector("--batch-size", "500", "--review-threshold", "0.0")

    users = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and worker.poll() is None:
        with psycopg.connect(pipeline.settings.dsn, autocommit=True) as conn:
            users |= {u for (u,) in conn.execute(
                "SELECT usename FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'fraudstream-detect'")}
            stored = conn.execute("SELECT count(*) FROM fraudulent_transactions").fetchone()
        if stored and stored[0] > 0 and users:
            break
        time.sleep(0.5)
    out = decisions(read_topic(pipeline.settings, pipeline.settings.topic_output,
                               until=lambda o: len(o) >= len(frame)))
    assert worker.poll() is None, "the worker died"
    assert users == {TEST_DETECTOR_LOGIN[0]}
    flagged = sum(d["decision"] != "approve" for d in out)
    assert flagged > 0
    time.sleep(1)
    with psycopg.connect(pipeline.settings.dsn) as conn:
        n = conn.execute("SELECT count(*) FROM fraudulent_transactions").fetchone()
    assert n is not None and n[0] == flagged

    pipeline.stop_all()
    start = _start_line(pipeline)
    assert start["least_privilege"] is True
    assert start["database"].startswith(f"postgresql://{TEST_DETECTOR_LOGIN[0]}:***@")
    for log in pipeline.log_dir.glob("*.log"):
        text = log.read_text()
        assert TEST_DETECTOR_LOGIN[1] not in text and "test-admin-pw" not in text


def _start_line(pipeline: Pipeline) -> dict[str, object]:
    for log in pipeline.log_dir.glob("detect-*.log"):
        for line in log.read_text().splitlines():
            if '"detector.start"' in line:
                return json.loads(line)
    raise AssertionError("no detector.start log line")


def test_grant_detector_command_creates_a_working_login(pipeline: Pipeline, unique: str) -> None:
    """`fraudstream db grant-detector` as an operator runs it: the login and its password come
    from FRAUDSTREAM_DETECTOR_DATABASE_URL; the new login can insert and nothing more."""
    user, password = f"detect_{unique}", f"pw-{unique}-Zq9"
    url = pipeline.settings.detector_dsn.replace(
        f"{TEST_DETECTOR_LOGIN[0]}:{TEST_DETECTOR_LOGIN[1]}@", f"{user}:{password}@")
    env = {**pipeline.env, "FRAUDSTREAM_DETECTOR_DATABASE_URL": url}
    try:
        for _ in range(2):  # created, then updated
            out = subprocess.run([sys.executable, "-m", "fraudstream.cli", "db", "grant-detector"],
                                 env=env, capture_output=True, text=True, cwd=ROOT, timeout=120)
            assert out.returncode == 0, out.stdout + out.stderr
            assert password not in out.stdout + out.stderr
        assert "updated" in out.stdout
        sink = SuspiciousSink(url)
        try:
            assert sink.write([_row("cli-1")]) == 1
        finally:
            sink.close()
        with psycopg.connect(url, autocommit=True) as conn, pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DELETE FROM fraudulent_transactions")
    finally:
        _drop_role(pipeline.settings.dsn, user)


def _drop_role(dsn: str, user: str) -> None:
    """DROP ROLE once the role's closed sessions are gone: a backend drops its temporary tables
    (the sink's COPY staging table) as it exits, after the client has already closed."""
    deadline = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            try:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
                return
            except errors.DependentObjectsStillExist:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
