"""The foundation against the real services: start/stop, idempotency, round trip, errors."""

from __future__ import annotations

import socket
import subprocess
import time

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from fraudstream.db.migrate import available, migrate
from fraudstream.infra import local
from fraudstream.infra.kafka import InfraError, KafkaCluster
from fraudstream.infra.processes import is_running, read_pid
from fraudstream.infra.status import collect

from .conftest import ROOT, TEST_KAFKA_BASE_PORT, Infra, make_settings

pytestmark = pytest.mark.integration


def test_cold_start_within_budget(infra: Infra) -> None:
    assert infra.up_seconds <= 90, f"cold infra up took {infra.up_seconds:.1f}s"


def test_topics_have_three_partitions_rf3_full_isr(infra: Infra) -> None:
    st = collect(infra.settings, infra.cluster)
    assert st.kafka_error is None
    assert len(st.brokers) == 3
    topics = {t.name: t for t in st.topics}
    for name in ("input", "output", "training", "input.dlq"):
        assert topics[name].partitions == 3
        assert topics[name].replication_factor == 3
        assert topics[name].min_isr == 3
    assert st.quorum["voters"] == [1, 2, 3]
    assert st.quorum["leader"] in (1, 2, 3)
    assert st.postgres_ok, st.postgres_detail


def test_up_is_idempotent(infra: Infra) -> None:
    pids = [read_pid(n.pid_file) for n in infra.cluster.nodes]
    started = time.monotonic()
    local.up(infra.settings, nodes=3)
    assert time.monotonic() - started < 15
    assert [read_pid(n.pid_file) for n in infra.cluster.nodes] == pids


def test_produce_consume_round_trip(infra: Infra, unique: str) -> None:
    producer = Producer({"bootstrap.servers": infra.bootstrap, "enable.idempotence": True})
    sent = {f"k{i}-{unique}": f"v{i}" for i in range(300)}
    for k, v in sent.items():
        producer.produce("input", key=k, value=v)
    assert producer.flush(30) == 0
    consumer = Consumer({
        "bootstrap.servers": infra.bootstrap, "group.id": f"rt-{unique}",
        "auto.offset.reset": "earliest", "isolation.level": "read_committed",
    })
    consumer.subscribe(["input"])
    got: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while len(got) < len(sent) and time.monotonic() < deadline:
        for m in consumer.consume(500, timeout=1):
            if m.error() is None and m.key().decode().endswith(unique):
                got[m.key().decode()] = m.value().decode()
    consumer.close()
    assert got == sent


def test_migrations_apply_twice(infra: Infra) -> None:
    assert migrate(infra.settings.dsn) == []  # already applied by `up`
    assert migrate(infra.settings.dsn) == []
    with psycopg.connect(infra.settings.dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in available()]
        conn.execute("SELECT count(*) FROM fraudulent_transactions").fetchone()


def test_psql_connects_as_admin(infra: Infra) -> None:
    s = infra.settings
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(s.pg_port), "-U", "admin", "-d", "fraud_detection",
         "-tAc", "select current_user || '@' || current_database()"],
        capture_output=True, text=True, env={"PGPASSWORD": s.pg_password, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "admin@fraud_detection"


def test_broker_that_fails_to_start_gives_readable_error(infra: Infra, tmp_path) -> None:
    port = TEST_KAFKA_BASE_PORT + 1000  # apart from the session cluster
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    settings = make_settings(state_dir=tmp_path / "state", kafka_base_port=port,
                             infra_start_timeout_s=60)
    cluster = KafkaCluster(settings, nodes=1)
    try:
        with pytest.raises(InfraError) as err:
            cluster.up()
        msg = str(err.value)
        # Refused before the JVM starts, naming the port (a JVM that dies anyway is reported
        # with its exit status and ERROR lines: tests/unit/test_infra_kafka_start.py).
        assert f"Kafka node 1: port(s) {port} on 127.0.0.1 in use by another process" in msg
    finally:
        blocker.close()
        cluster.down(purge=True)
    assert not cluster.running_nodes()


def test_single_node_light_mode_up_and_down_leaves_no_process(tmp_path) -> None:
    settings = make_settings(state_dir=tmp_path / "state", kafka_base_port=TEST_KAFKA_BASE_PORT + 1200)
    cluster = KafkaCluster(settings, nodes=1)
    cluster.up()
    pid = read_pid(cluster.nodes[0].pid_file)
    assert is_running(pid, cluster.nodes[0].marker)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    assert len(admin.list_topics(timeout=10).brokers) == 1
    cluster.down(purge=True)
    assert not is_running(pid, cluster.nodes[0].marker)
    assert not (tmp_path / "state" / "kafka").exists()


def test_cli_status_reports_the_cluster(infra: Infra) -> None:
    s = infra.settings
    env = {
        "PATH": "/usr/bin:/bin", "FRAUDSTREAM_STATE_DIR": str(s.state_dir),
        "FRAUDSTREAM_KAFKA_BASE_PORT": str(s.kafka_base_port), "DATABASE_URL": s.dsn,
        "COLUMNS": "200",
    }
    out = subprocess.run([str(ROOT / ".venv/bin/fraudstream"), "infra", "status"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Brokers (3)" in out.stdout
    assert "training" in out.stdout and "reachable" in out.stdout
