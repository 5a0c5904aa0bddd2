"""Secrets never printed or logged: settings, DSNs, the detector's start line, `infra status`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from fraudstream.pipeline.command import _log_start
from fraudstream.redact import redact_dsn
from fraudstream.settings import DEFAULT_DETECTOR_DATABASE_URL, Settings

ROOT = Path(__file__).resolve().parents[2]
PG_SECRET = "pg-Secr3t-value"
DETECT_SECRET = "det-Secr3t-value"
KAFKA_SECRET = "kafka-Secr3t-value"


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("FRAUDSTREAM_", "KAFKA_", "DATABASE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT / "tests")  # no .env file here


def _secret_settings(**extra: object) -> Settings:
    return Settings(
        database_url=f"postgresql://admin:{PG_SECRET}@db.example:5432/fraud_detection",
        detector_database_url=f"postgresql://fraudstream_detect:{DETECT_SECRET}@db.example/fraud_detection",
        kafka_bootstrap_servers="b1:9093", kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="fraudstream",
        kafka_sasl_password=KAFKA_SECRET, **extra,
    )


def _assert_no_secret(text: str) -> None:
    for secret in (PG_SECRET, DETECT_SECRET, KAFKA_SECRET):
        assert secret not in text


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:p%40ss@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u@h/db?sslmode=require&password=zz", "postgres://u@h/db?sslmode=require&password=***"),
        ("host=h user=u password=sec dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='a b\\' c' user=u", "host=h password=*** user=u"),
        ("postgresql://h/db", "postgresql://h/db"),
    ],
)
def test_redact_dsn(dsn: str, expected: str) -> None:
    assert redact_dsn(dsn) == expected


def test_settings_never_show_passwords() -> None:
    s = _secret_settings()
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.for_detector())):
        _assert_no_secret(text)
    assert s.kafka_client_config()["sasl.password"] == KAFKA_SECRET  # still usable by clients


def test_detector_dsn_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    assert Settings().detector_dsn == DEFAULT_DETECTOR_DATABASE_URL  # local embedded default
    own = "postgresql://owner:pw@db:5432/fraud_detection"
    monkeypatch.setenv("DATABASE_URL", own)
    assert Settings().detector_dsn == own  # a user's database, no detector login: fallback
    det = "postgresql://det:pw2@db:5432/fraud_detection"
    monkeypatch.setenv("FRAUDSTREAM_DETECTOR_DATABASE_URL", det)
    s = Settings()
    assert (s.dsn, s.detector_dsn, s.for_detector().dsn) == (own, det, det)
    monkeypatch.setenv("FRAUDSTREAM_DETECTOR_DATABASE_URL", "")
    assert Settings().detector_dsn == own


def test_detector_start_line_has_no_password() -> None:
    with capture_logs() as logs:
        _log_start(_secret_settings(), "g")
    start = next(e for e in logs if e["event"] == "detector.start")
    assert start["database"] == "postgresql://fraudstream_detect:***@db.example/fraud_detection"
    assert start["least_privilege"] is True and start["kafka_sasl_username"] == "fraudstream"
    _assert_no_secret(repr(logs))

    with capture_logs() as logs:  # no detector login: a warning, still no password
        _log_start(Settings(database_url=f"postgresql://admin:{PG_SECRET}@h/db"), "g")
    assert [e["event"] for e in logs] == ["detector.start", "detector.database.owner_role"]
    _assert_no_secret(repr(logs))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_infra_status_output_has_no_password(tmp_path: Path) -> None:
    """Both services unreachable: the error paths print what went wrong, not the secrets."""
    port = _closed_port()
    env = {
        "PATH": os.environ["PATH"], "COLUMNS": "200", "FRAUDSTREAM_LOG_JSON": "1",
        "FRAUDSTREAM_STATE_DIR": str(tmp_path),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUDSTREAM_KAFKA_SASL_USERNAME": "fraudstream",
        "FRAUDSTREAM_KAFKA_SASL_PASSWORD": KAFKA_SECRET,
        "DATABASE_URL": f"postgresql://admin:{PG_SECRET}@127.0.0.1:{port}/fraud_detection",
        "FRAUDSTREAM_DETECTOR_DATABASE_URL":
            f"postgresql://fraudstream_detect:{DETECT_SECRET}@127.0.0.1:{port}/fraud_detection",
    }
    out = subprocess.run([sys.executable, "-m", "fraudstream.cli", "infra", "status"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 1  # really failed to reach both, so the error paths ran
    assert "Kafka unreachable" in out.stdout and "unreachable" in out.stdout
    _assert_no_secret(out.stdout + out.stderr)
