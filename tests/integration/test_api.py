"""The API against the real PostgreSQL and Kafka: queue, detail, verdicts (row + label on
``training``), roles, sessions with CSRF, rules and models, live statistics, health."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from fastapi.testclient import TestClient
from pydantic import SecretStr

from fraudstream.api.app import create_app
from fraudstream.api.auth import store
from fraudstream.contracts.messages import Decision, Label
from fraudstream.infra.topics import ensure_topics, topic_specs

from .api_support import ADMIN_PW, ANALYST_PW, T0, ApiEnv, make_api_env, read_labels
from .conftest import Infra

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(infra: Infra) -> ApiEnv:
    return make_api_env(infra, uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def client(api: ApiEnv) -> Iterator[TestClient]:
    with TestClient(create_app(api.settings), base_url="http://testserver") as c:
        yield c


def get(client: TestClient, api: ApiEnv, path: str, role: str = "analyst", **params: object) -> dict:
    r = client.get(path, headers=api.auth(role), params=params)
    assert r.status_code == 200, r.text
    return r.json()


# ---- health and authentication ------------------------------------------------------------
def test_health_is_open_and_checks_both_services(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"kafka": "ok", "postgres": "ok"}


def test_readyz_reports_unreachable_services(api: ApiEnv) -> None:
    broken = api.settings.model_copy(update={
        "kafka_bootstrap_servers": "127.0.0.1:9", "api_session_secret": SecretStr("x" * 32),
        "database_url": SecretStr("postgresql://nobody:x@127.0.0.1:9/none"),
    })
    with TestClient(create_app(broken, collect_stats=False)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["kafka"] != "ok" and checks["postgres"] != "ok"


@pytest.mark.parametrize("path", [
    "/api/v1/transactions", "/api/v1/transactions/tx-001", "/api/v1/stats", "/api/v1/rules",
    "/api/v1/models", "/metrics", "/openapi.json", "/api/v1/auth/me",
])
def test_everything_else_needs_authentication(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    forged = "Bearer fsk_0000000000000000_" + "a" * 43
    assert client.get(path, headers={"Authorization": forged}).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer not-a-key"}).status_code == 401


def test_revoked_key_is_refused(client: TestClient, api: ApiEnv) -> None:
    from fraudstream.api.auth.keys import generate_key

    key = generate_key()
    with psycopg.connect(api.settings.dsn, autocommit=True) as conn:
        store.add_key(conn, key, "temp", "analyst")
        assert client.get("/api/v1/rules", headers={"X-API-Key": key.token}).status_code == 200
        store.revoke_key(conn, key.key_id)
    assert client.get("/api/v1/rules", headers={"X-API-Key": key.token}).status_code == 401


def test_dashboard_redirects_to_login_without_session(client: TestClient) -> None:
    r = client.get("/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    page = client.get("/login")
    assert page.status_code == 200 and "login-form" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_openapi_published_to_authenticated_callers(client: TestClient, api: ApiEnv) -> None:
    spec = get(client, api, "/openapi.json")
    assert "/api/v1/transactions/{transaction_id}/confirm-fraud" in spec["paths"]
    assert {"HTTPBearer", "APIKeyHeader", "APIKeyCookie"} <= set(spec["components"]["securitySchemes"])


# ---- the queue ----------------------------------------------------------------------------
def test_list_defaults_to_highest_score_first_with_total(client: TestClient, api: ApiEnv) -> None:
    page = get(client, api, "/api/v1/transactions")
    scores = [t["score"] for t in page["items"]]
    assert page["total"] == 40 and not page["total_capped"] and len(scores) == 40
    assert scores == sorted(scores, reverse=True)
    assert page["items"][0]["transaction_id"] == "tx-039"


def test_filters(client: TestClient, api: ApiEnv) -> None:
    def ids(**params: object) -> set[str]:
        page = get(client, api, "/api/v1/transactions", limit=500, **params)
        return {t["transaction_id"] for t in page["items"]}

    by = {a["transaction_id"]: a for a in api.alerts}
    assert ids(status="legitimate") == {k for k, a in by.items() if a["review_status"] == "legitimate"}
    assert ids(decision="decline") == {k for k, a in by.items() if a["decision"] == "decline"}
    assert ids(score_min=0.8, score_max=0.9) == {k for k, a in by.items() if 0.8 <= a["score"] <= 0.9}
    assert ids(customer_id="C2", terminal_id="T2") == {
        k for k, a in by.items() if a["customer_id"] == "C2" and a["terminal_id"] == "T2"}
    start, end = T0 + timedelta(minutes=50), T0 + timedelta(minutes=100)
    assert ids(**{"from": start.isoformat(), "to": end.isoformat()}) == {f"tx-{i:03d}" for i in range(5, 10)}
    assert ids(status=["open", "legitimate"], decision="review", customer_id="C1") == {
        k for k, a in by.items() if a["decision"] == "review" and a["customer_id"] == "C1"}
    assert ids(customer_id="nobody") == set()


def test_sort_and_paginate(client: TestClient, api: ApiEnv) -> None:
    pages = [get(client, api, "/api/v1/transactions", sort="tx_datetime", order="asc", limit=15, offset=o)
             for o in (0, 15, 30)]
    seen = [t["transaction_id"] for p in pages for t in p["items"]]
    assert seen == [f"tx-{i:03d}" for i in range(40)]
    assert [len(p["items"]) for p in pages] == [15, 15, 10]
    assert all(p["total"] == 40 for p in pages)


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 501}, {"score_min": 2}, {"sort": "customer_id; DROP TABLE x"},
    {"status": "closed"}, {"from": "2026-01-01T00:00:00"},  # naive time: ambiguous
    {"customer_id": "C\x00"}, {"terminal_id": ""},
])
def test_bad_queries_are_422(client: TestClient, api: ApiEnv, params: dict) -> None:
    assert client.get("/api/v1/transactions", headers=api.auth(), params=params).status_code == 422


def test_detail_has_features_reasons_and_customer_baseline(client: TestClient, api: ApiEnv) -> None:
    t = get(client, api, "/api/v1/transactions/tx-004")  # customer C0
    assert t["reasons"] == ["rule:HIGH_AMOUNT", "model:TX_AMOUNT=+0.04"]
    assert t["features"] == {"TX_AMOUNT": 104.0, "CUSTOMER_ID_NB_TX_1DAY_WINDOW": 4.0}
    base = t["customer_baseline"]
    assert base["source"] == "all_decisions" and base["transactions"] == 5
    assert base["median"] == {"TX_AMOUNT": 22.0, "CUSTOMER_ID_NB_TX_1DAY_WINDOW": 1.0}
    other = get(client, api, "/api/v1/transactions/tx-001")  # C1: only its earlier alerts
    assert other["customer_baseline"]["source"] == "none"
    assert get(client, api, "/api/v1/transactions/tx-005")["customer_baseline"] == {
        "source": "suspicious_only", "transactions": 1,
        "median": {"TX_AMOUNT": 101.0, "CUSTOMER_ID_NB_TX_1DAY_WINDOW": 1.0}}
    assert client.get("/api/v1/transactions/nope", headers=api.auth()).status_code == 404


# ---- verdicts close the loop --------------------------------------------------------------
def row(api: ApiEnv, tid: str) -> tuple:
    with psycopg.connect(api.settings.dsn) as conn:
        return conn.execute(
            "SELECT review_status, reviewed_by, reviewed_at, review_comment FROM fraudulent_transactions"
            " WHERE transaction_id = %s", (tid,)).fetchone()


def test_confirm_fraud_updates_row_and_publishes_label(client: TestClient, api: ApiEnv) -> None:
    before = datetime.now(UTC)
    r = client.post("/api/v1/transactions/tx-012/confirm-fraud", headers=api.auth(),
                    json={"comment": "customer called"})
    assert r.status_code == 200, r.text
    assert r.json()["review_status"] == "confirmed_fraud" and r.json()["label_published"]
    status, by, at, comment = row(api, "tx-012")
    assert (status, by, comment) == ("confirmed_fraud", "analyst-key", "customer called")
    assert before - timedelta(seconds=5) <= at <= datetime.now(UTC) + timedelta(seconds=5)
    [label] = read_labels(api.settings, "tx-012")
    assert label == Label(transaction_id="tx-012", is_fraud=True, labeled_at=label.labeled_at,
                          source="analyst")
    assert abs((label.labeled_at - at).total_seconds()) < 0.01


def test_mark_legitimate_and_change_of_mind(client: TestClient, api: ApiEnv) -> None:
    assert client.post("/api/v1/transactions/tx-013/mark-legitimate", headers=api.auth()).status_code == 200
    assert row(api, "tx-013")[0] == "legitimate"
    assert client.post("/api/v1/transactions/tx-013/confirm-fraud", headers=api.auth()).status_code == 200
    labels = read_labels(api.settings, "tx-013", count=2)
    assert [lab.is_fraud for lab in labels] == [False, True]  # same key, same partition: in order
    assert {lab.source for lab in labels} == {"analyst"}
    assert row(api, "tx-013")[0] == "confirmed_fraud"
    assert client.post("/api/v1/transactions/none/confirm-fraud", headers=api.auth()).status_code == 404


# ---- roles --------------------------------------------------------------------------------
RULES = "name: api-test\nrules:\n  - id: BIG\n    condition: TX_AMOUNT > 700\n    action: {score: 0.6}\n"


def test_analysts_read_registries_but_cannot_change_them(client: TestClient, api: ApiEnv) -> None:
    assert get(client, api, "/api/v1/rules") == [] and get(client, api, "/api/v1/models") == []
    h = api.auth("analyst")
    assert client.post("/api/v1/rules", headers=h, json={"text": RULES}).status_code == 403
    assert client.post("/api/v1/rules/1/activate", headers=h).status_code == 403
    assert client.post("/api/v1/models/1/promote", headers=h).status_code == 403


def test_admin_uploads_and_activates_rules(client: TestClient, api: ApiEnv) -> None:
    h = api.auth("admin")
    bad_text = "name: x\nrules:\n  - id: A\n    condition: NOPE > 1\n    action: {score: 0.1}\n"
    bad = client.post("/api/v1/rules", headers=h, json={"text": bad_text})
    assert bad.status_code == 422 and "NOPE" in bad.text
    v1 = client.post("/api/v1/rules", headers=h, json={"text": RULES, "activate": True}).json()
    v2 = client.post("/api/v1/rules", headers=h, json={"body": {"name": "second", "rules": []}}).json()
    assert v1["active"] and not v2["active"] and v1["created_by"] == "admin-key" and v1["n_rules"] == 1
    assert client.post(f"/api/v1/rules/{v2['version']}/activate", headers=h).json()["active"]
    listed = {r["version"]: r["active"] for r in get(client, api, "/api/v1/rules")}
    assert listed == {v1["version"]: False, v2["version"]: True}
    assert get(client, api, f"/api/v1/rules/{v1['version']}")["body"]["rules"][0]["id"] == "BIG"
    assert client.post("/api/v1/rules/99999/activate", headers=h).status_code == 404
    assert client.post("/api/v1/models/99999/promote", headers=h).status_code == 404


def test_admin_promotes_a_model(client: TestClient, api: ApiEnv) -> None:
    with psycopg.connect(api.settings.dsn, autocommit=True) as conn:
        v = [conn.execute("INSERT INTO models (kind, features, metrics, artifact) VALUES"
                          " ('lightgbm', '[]', %s, 'x') RETURNING version", (m,)).fetchone()[0]
             for m in ('{"average_precision": 0.5}', '{"average_precision": 0.7}')]
    listed = get(client, api, "/api/v1/models")
    assert [m["metrics"]["average_precision"] for m in listed] == [0.7, 0.5]
    r = client.post(f"/api/v1/models/{v[1]}/promote", headers=api.auth("admin"))
    assert r.status_code == 200 and r.json()["active"] and r.json()["promoted_at"]
    assert [m["active"] for m in get(client, api, "/api/v1/models")] == [True, False]


# ---- browser sessions and CSRF ------------------------------------------------------------
def test_session_login_csrf_and_disable(api: ApiEnv) -> None:
    with TestClient(create_app(api.settings, collect_stats=False), base_url="http://testserver") as c:
        for name, password in (("alice", "wrong-password"), ("ghost", "x" * 12)):
            assert c.post("/api/v1/auth/login", json={"name": name, "password": password}).status_code == 401
        form = c.post("/api/v1/auth/login", content=f"name=alice&password={ANALYST_PW}",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 422  # JSON only: a cross-site form cannot log anyone in
        r = c.post("/api/v1/auth/login", json={"name": "alice", "password": ANALYST_PW})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        csrf = r.json()["csrf_token"]
        assert c.get("/api/v1/auth/me").json()["name"] == "alice"
        assert c.get("/dashboard").status_code == 200

        url = "/api/v1/transactions/tx-020/mark-legitimate"
        assert c.post(url).status_code == 403  # no CSRF token
        assert c.post(url, headers={"X-CSRF-Token": "forged"}).status_code == 403
        assert c.post(url, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"}).status_code == 403
        assert row(api, "tx-020")[0] == "open"
        ok = c.post(url, headers={"X-CSRF-Token": csrf, "Origin": "http://testserver"})
        assert ok.status_code == 200 and ok.json()["reviewed_by"] == "alice"
        as_analyst = c.post("/api/v1/rules", headers={"X-CSRF-Token": csrf}, json={"text": RULES})
        assert as_analyst.status_code == 403

        with psycopg.connect(api.settings.dsn, autocommit=True) as conn:
            store.set_disabled(conn, "alice")
        assert c.get("/api/v1/auth/me").status_code == 401
        with psycopg.connect(api.settings.dsn, autocommit=True) as conn:
            store.set_disabled(conn, "alice", False)

        c.cookies.clear()
        admin = c.post("/api/v1/auth/login", json={"name": "root", "password": ADMIN_PW}).json()
        assert admin["role"] == "admin"
        assert c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": admin["csrf_token"]}).status_code == 204
        assert c.get("/api/v1/auth/me").status_code == 401


def test_values_postgres_cannot_store_are_422(client: TestClient, api: ApiEnv) -> None:
    h = api.auth("admin")
    assert client.post("/api/v1/transactions/tx-030/confirm-fraud", headers=h,
                       json={"comment": "a\x00b"}).status_code == 422
    assert row(api, "tx-030")[0] == "open"
    nul = client.post("/api/v1/rules", headers=h, json={"body": {"name": "n\x00", "rules": []}})
    assert nul.status_code == 422


def test_login_is_throttled_after_repeated_failures(client: TestClient) -> None:
    attempt = {"name": "mallory", "password": "guess-guess"}
    codes = [client.post("/api/v1/auth/login", json=attempt).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]


# ---- live statistics ----------------------------------------------------------------------
def _decision(i: int, decision: str, when: datetime) -> bytes:
    return msgspec.json.encode(Decision(
        transaction_id=f"s{i}", tx_datetime=when.isoformat(), customer_id="C", terminal_id="T",
        tx_amount=10.0, currency="EUR", score=0.1, decision=decision, reasons=[], features={},
        model_version=None, rules_version=None, processed_at=when.isoformat()))


def test_stats_from_the_topics(api: ApiEnv) -> None:
    suffix = uuid.uuid4().hex[:8]  # topics of its own: the other tests' labels would count too
    topics = {f"topic_{t}": f"{t}-stats-{suffix}" for t in ("input", "output", "training")}
    s = api.settings.model_copy(update=topics)
    ensure_topics(AdminClient({"bootstrap.servers": s.bootstrap_servers()}), topic_specs(s, 3))
    p = Producer({"bootstrap.servers": s.bootstrap_servers(), "acks": "all"})
    now = datetime.now(UTC)
    mix = ["approve"] * 16 + ["review"] * 3 + ["decline"]
    for i, d in enumerate(mix):
        p.produce(s.topic_output, _decision(i, d, now - timedelta(milliseconds=200)), b"C")
    for i in range(10):
        label = Label(f"s{i}", i < 2, now, "simulator")
        p.produce(s.topic_training, msgspec.json.encode(label), f"s{i}".encode())
    for _ in range(7):  # nobody consumes input: the detector group lags by all of it
        p.produce(s.topic_input, b"{}", b"C")
    assert p.flush(30) == 0

    with TestClient(create_app(s)) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = get(client, api, "/api/v1/stats", minutes=5)
            m = st["last_minute"]
            if m["decisions"] >= 20 and m["labels"] >= 10 and m["lag"] == 7:
                break
            time.sleep(0.5)
    assert st["collecting"]
    assert m["decision_mix"] == {"approve": 16, "review": 3, "decline": 1}
    assert m["alert_rate"] == 0.2 and m["fraud_rate"] == 0.2
    assert 100 <= m["latency_ms"]["p50"] < 5000
    assert sum(st["lag_by_partition"].values()) == 7
    assert len(st["series"]) == 30 and sum(b["decisions"] for b in st["series"]) == 20
    assert st["open_alerts"]["review"] > 0


def test_metrics_count_requests(client: TestClient, api: ApiEnv) -> None:
    get(client, api, "/api/v1/rules")
    text = client.get("/metrics", headers=api.auth()).text
    assert 'fraudstream_api_requests_total{method="GET",route="/api/v1/rules",status="200"}' in text
    assert "fraudstream_api_labels_published_total" in text
