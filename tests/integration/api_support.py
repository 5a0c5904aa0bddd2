"""Helpers for the API tests: an isolated database and topics with users, keys and seeded
alerts; the API as a real server process; reading labels back from ``training``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import psycopg
from psycopg.types.json import Jsonb

from fraudstream.api.auth import store
from fraudstream.api.auth.keys import generate_key
from fraudstream.api.auth.passwords import hash_password
from fraudstream.contracts.messages import Label
from fraudstream.settings import Settings

from .conftest import ROOT, Infra, isolated_settings
from .streams import read_topic

ANALYST_PW = "analyst-password-1"
ADMIN_PW = "admin-password-12"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class ApiEnv:
    settings: Settings
    env: dict[str, str]
    analyst_key: str
    admin_key: str
    alerts: list[dict]

    def auth(self, role: str = "analyst") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.analyst_key if role == 'analyst' else self.admin_key}"}


def make_api_env(infra: Infra, unique: str) -> ApiEnv:
    settings = isolated_settings(infra, unique, f"api_{unique}")
    dsn = settings.dsn
    analyst, admin = generate_key(), generate_key()
    with psycopg.connect(dsn, autocommit=True) as conn:
        store.add_user(conn, "alice", "analyst", hash_password(ANALYST_PW))
        store.add_user(conn, "root", "admin", hash_password(ADMIN_PW))
        store.add_key(conn, analyst, "analyst-key", "analyst")
        store.add_key(conn, admin, "admin-key", "admin")
        alerts = seed_alerts(conn)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FRAUDSTREAM_", "KAFKA_", "DATABASE_"))},
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap, "DATABASE_URL": dsn,
        "FRAUDSTREAM_TOPIC_INPUT": settings.topic_input, "FRAUDSTREAM_TOPIC_OUTPUT": settings.topic_output,
        "FRAUDSTREAM_TOPIC_TRAINING": settings.topic_training, "FRAUDSTREAM_TOPIC_DLQ": settings.topic_dlq,
        "FRAUDSTREAM_LOG_JSON": "1", "PYTHONPATH": str(ROOT / "src"),
    }
    return ApiEnv(settings, env, analyst.token, admin.token, alerts)


def seed_alerts(conn: psycopg.Connection) -> list[dict]:
    """40 alerts over 4 customers and 5 terminals, distinct scores, one every 10 minutes,
    plus the first customer's ordinary history in the labelled feature store."""
    alerts = []
    for i in range(40):
        a = {
            "transaction_id": f"tx-{i:03d}", "tx_datetime": T0 + timedelta(minutes=10 * i),
            "customer_id": f"C{i % 4}", "terminal_id": f"T{i % 5}", "tx_amount": 100.0 + i,
            "score": round(0.5 + i * 0.012, 3), "decision": "decline" if i % 3 == 0 else "review",
            "reasons": ["rule:HIGH_AMOUNT", f"model:TX_AMOUNT=+0.{i:02d}"],
            "features": {"TX_AMOUNT": 100.0 + i, "CUSTOMER_ID_NB_TX_1DAY_WINDOW": float(i % 7)},
            "review_status": "legitimate" if i % 10 == 9 else "open",
        }
        conn.execute(
            "INSERT INTO fraudulent_transactions (transaction_id, tx_datetime, customer_id, terminal_id,"
            " tx_amount, score, decision, reasons, features, review_status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (a["transaction_id"], a["tx_datetime"], a["customer_id"], a["terminal_id"], a["tx_amount"],
             a["score"], a["decision"], Jsonb(a["reasons"]), Jsonb(a["features"]), a["review_status"]),
        )
        alerts.append(a)
    for j in range(5):  # customer C0's usual: amounts 20..24 (median 22), one tx a day
        conn.execute(
            "INSERT INTO labelled_features (transaction_id, tx_datetime, customer_id, terminal_id, features,"
            " score, decision) VALUES (%s, %s, 'C0', 'T9', %s, 0.01, 'approve')",
            (f"hist-{j}", T0 - timedelta(days=j + 1),
             Jsonb({"TX_AMOUNT": 20.0 + j, "CUSTOMER_ID_NB_TX_1DAY_WINDOW": 1.0})),
        )
    return alerts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(api: ApiEnv, log_path: Path, port: int) -> subprocess.Popen:
    """``fraudstream api`` as a real server process; returns once /readyz says ready."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraudstream.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=api.env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"api exited {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"api not ready: {log_path.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def read_labels(
    settings: Settings, transaction_id: str, count: int = 1, timeout_s: float = 30
) -> list[Label]:
    """The labels for ``transaction_id`` on ``training`` (decoded with the contract), once
    ``count`` of them have arrived."""
    decode = msgspec.json.Decoder(Label).decode

    def mine(msgs: list) -> list[Label]:
        return [decode(m.value()) for m in msgs if m.key() == transaction_id.encode()]

    msgs = read_topic(settings, settings.topic_training, lambda ms: len(mine(ms)) >= count, timeout_s)
    return mine(msgs)
