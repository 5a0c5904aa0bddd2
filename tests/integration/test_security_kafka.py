"""Kafka SASL/SCRAM-SHA-512 (and over TLS) against a real broker: fraudstream's own client
settings produce and consume through it; a wrong password or no authentication is refused.

One KRaft node of its own (ports 31092+, apart from every suite's clusters and below the
kernel's ephemeral range, where a client's own port could hold one) with SCRAM users
added at format time, a SASL_PLAINTEXT listener and a SASL_SSL listener whose self-signed
certificate is made by ``keytool`` here; stopped and purged at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from psycopg import sql

from fraudstream.db.migrate import migrate
from fraudstream.generator.command import to_contract_frame
from fraudstream.generator.handbook import generate_dataset
from fraudstream.infra.kafka import BrokerSecurity, KafkaCluster, ScramUser
from fraudstream.infra.topics import ensure_topics, topic_specs
from fraudstream.settings import Settings

from .conftest import ROOT, Infra, detector_url
from .streams import decisions, feed, read_topic

pytestmark = pytest.mark.integration

BASE_PORT = int(os.environ.get("FRAUDSTREAM_TEST_SASL_PORT", "31092"))
BROKER = ScramUser("broker", "broker-pw-1")
CLIENT = ScramUser("fraudstream", "client-pw-2")
STORE_PW = "store-pw-3"


def _keystore(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (PKCS12 for the broker, PEM for the client)."""
    keystore, pem = folder / "broker.p12", folder / "ca.pem"
    common = ["-alias", "broker", "-keystore", str(keystore), "-storepass", STORE_PW]
    subprocess.run(
        ["keytool", "-genkeypair", *common, "-keypass", STORE_PW, "-storetype", "PKCS12",
         "-keyalg", "RSA", "-keysize", "2048", "-validity", "2", "-dname", "CN=localhost",
         "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-ext", "BC=ca:true"],
        check=True, capture_output=True,
    )
    subprocess.run(["keytool", "-exportcert", "-rfc", *common, "-file", str(pem)],
                   check=True, capture_output=True)
    return keystore, pem


@pytest.fixture(scope="module")
def secured() -> Iterator[tuple[KafkaCluster, Path]]:
    # In the checkout's state folder like the suite's own cluster (a pytest temporary folder
    # may be pruned by a concurrent pytest session while the broker runs).
    home = ROOT / ".state" / f"test-sasl-{BASE_PORT}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    keystore, pem = _keystore(home)
    settings = Settings(state_dir=home / "state", cache_dir=ROOT / ".cache", kafka_base_port=BASE_PORT,
                        kafka_bootstrap_servers="", infra_start_timeout_s=90)
    cluster = KafkaCluster(settings, nodes=1, security=BrokerSecurity(
        (BROKER, CLIENT), keystore=keystore, keystore_password=STORE_PW))
    try:
        cluster.up()
        yield cluster, pem
    finally:
        cluster.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)
    assert not cluster.running_nodes()


def _client_settings(bootstrap: str, password: str = CLIENT.password, **extra: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap_servers": bootstrap, "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": CLIENT.name,
        "kafka_sasl_password": password, "topic_input": "sasl-input", "topic_output": "sasl-output",
        "topic_training": "sasl-training", "topic_dlq": "sasl-dlq", "topic_replication_factor": 1,
    }
    return Settings(**{**values, **extra})  # type: ignore[arg-type]


def _env(settings: Settings) -> dict[str, str]:
    """What an operator sets: the documented environment variables, nothing else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUDSTREAM_", "KAFKA_", "DATABASE_"))}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
        "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUDSTREAM_KAFKA_SASL_USERNAME": CLIENT.name,
        "FRAUDSTREAM_KAFKA_SASL_PASSWORD": CLIENT.password,
        "FRAUDSTREAM_TOPIC_INPUT": settings.topic_input,
        "FRAUDSTREAM_TOPIC_TRAINING": settings.topic_training,
        "FRAUDSTREAM_LOG_JSON": "1", "PYTHONPATH": str(ROOT / "src"),
    })
    if settings.kafka_ssl_ca_location:
        env["FRAUDSTREAM_KAFKA_SSL_CA_LOCATION"] = settings.kafka_ssl_ca_location
    return env


def _produce_and_read_back(settings: Settings, count: int) -> None:
    ensure_topics(AdminClient(settings.kafka_client_config()), topic_specs(settings, 1))
    out = subprocess.run(
        [sys.executable, "-m", "fraudstream.cli", "produce", "--customers", "300", "--terminals", "600",
         "--days", "5", "--count", str(count), "--no-labels"],
        env=_env(settings), capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert CLIENT.password not in out.stdout + out.stderr
    got = read_topic(settings, settings.topic_input, until=lambda m: len(m) >= count, timeout_s=60)
    assert len(got) == count


def test_scram_client_produces_and_consumes(secured: tuple[KafkaCluster, Path]) -> None:
    cluster, _ = secured
    _produce_and_read_back(_client_settings(cluster.bootstrap), 500)


def test_scram_over_tls_produces_and_consumes(secured: tuple[KafkaCluster, Path]) -> None:
    cluster, pem = secured
    settings = _client_settings(cluster.tls_bootstrap, kafka_security_protocol="SASL_SSL",
                                kafka_ssl_ca_location=str(pem), topic_input="tls-input",
                                topic_training="tls-training", topic_output="tls-output",
                                topic_dlq="tls-dlq")
    _produce_and_read_back(settings, 300)


def test_tls_listener_refuses_an_unknown_certificate_authority(
    secured: tuple[KafkaCluster, Path], tmp_path: Path,
) -> None:
    cluster, _ = secured
    _, other_pem = _keystore(tmp_path)  # a different self-signed certificate
    conf = _client_settings(cluster.tls_bootstrap, kafka_security_protocol="SASL_SSL",
                            kafka_ssl_ca_location=str(other_pem)).kafka_client_config()
    with pytest.raises(KafkaException):
        AdminClient({**conf, "log_level": 0}).list_topics(timeout=8)


@pytest.mark.parametrize("how", ["wrong password", "unknown user", "no authentication"])
def test_unauthenticated_clients_are_refused(secured: tuple[KafkaCluster, Path], how: str) -> None:
    cluster, _ = secured
    conf = _client_settings(cluster.bootstrap).kafka_client_config()
    if how == "wrong password":
        conf["sasl.password"] = "not-" + CLIENT.password
    elif how == "unknown user":
        conf["sasl.username"] = "mallory"
    else:
        conf = {"bootstrap.servers": cluster.bootstrap}
    with pytest.raises(KafkaException):
        AdminClient({**conf, "log_level": 0}).list_topics(timeout=8)
    errors: list[str] = []
    producer = Producer({**conf, "log_level": 0, "message.timeout.ms": 5000,
                         "error_cb": lambda e: errors.append(e.name())})
    delivered: list[object] = []
    producer.produce("sasl-input", b"x", on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(10)
    assert delivered and delivered[0] is not None  # never written
    if how != "no authentication":
        assert "_AUTHENTICATION" in errors


def test_detector_runs_over_scram(secured: tuple[KafkaCluster, Path], infra: Infra, unique: str) -> None:
    """The whole detector (consumer group, transactional producer, global reader) with SASL
    client settings, writing to PostgreSQL as its least-privilege role."""
    cluster, _ = secured
    db = f"fraud_sasl_{unique}"
    with psycopg.connect(infra.settings.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    settings = _client_settings(
        cluster.bootstrap, topic_input=f"det-input-{unique}", topic_output=f"det-output-{unique}",
        topic_training=f"det-training-{unique}", topic_dlq=f"det-dlq-{unique}",
        database_url=infra.settings.dsn.rsplit("/", 1)[0] + f"/{db}",
        detector_database_url=detector_url(db),
    )
    migrate(settings.dsn)
    ensure_topics(AdminClient(settings.kafka_client_config()), topic_specs(settings, 1))
    _, _, tx = generate_dataset(100, 200, 10, "2018-04-01")
    frame = to_contract_frame(tx)
    frame = frame[frame["tx_amount"] >= 0.005]
    feed(settings, frame, label_delay=None)
    env = {**_env(settings), "DATABASE_URL": settings.dsn,
           "FRAUDSTREAM_DETECTOR_DATABASE_URL": settings.detector_dsn,
           "FRAUDSTREAM_TOPIC_OUTPUT": settings.topic_output, "FRAUDSTREAM_TOPIC_DLQ": settings.topic_dlq}
    out = subprocess.run(
        [sys.executable, "-m", "fraudstream.cli", "detect", "--batch-size", "1000",
         "--review-threshold", "0.0", "--exit-when-idle", "5"],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert CLIENT.password not in out.stdout + out.stderr
    decided = decisions(read_topic(settings, settings.topic_output, until=lambda m: len(m) >= len(frame),
                                   timeout_s=60))
    assert sorted(d["transaction_id"] for d in decided) == sorted(frame["transaction_id"])
    with psycopg.connect(settings.dsn) as conn:
        stored = conn.execute("SELECT count(*) FROM fraudulent_transactions").fetchone()
    assert stored is not None and stored[0] == len(frame)  # review threshold 0: every one flagged
