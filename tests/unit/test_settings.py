from __future__ import annotations

import pytest

from fraudstream.settings import Settings


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "b1:9092,b2:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://worker:s3cret@db:6543/fraud_detection")
    monkeypatch.setenv("FRAUDSTREAM_TOPIC_INPUT", "tx-in")
    s = Settings()
    assert s.bootstrap_servers() == "b1:9092,b2:9092"
    assert (s.pg_user, s.pg_password, s.pg_port, s.pg_database) == (
        "worker", "s3cret", 6543, "fraud_detection")
    assert s.topic_input == "tx-in"
    assert "s3cret" not in repr(s)  # secrets never printed


def test_local_default_bootstrap_follows_node_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    s = Settings(kafka_base_port=20000)
    assert s.bootstrap_servers(1) == "127.0.0.1:20000"
    assert s.bootstrap_servers(3) == "127.0.0.1:20000,127.0.0.1:20001,127.0.0.1:20002"


def test_sasl_tls_settings_reach_the_client_config() -> None:
    s = Settings(
        kafka_bootstrap_servers="b:9093", kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="u",
        kafka_sasl_password="p", kafka_ssl_ca_location="/ca.pem",
    )
    conf = s.kafka_client_config()
    assert conf == {
        "bootstrap.servers": "b:9093", "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "p",
        "ssl.ca.location": "/ca.pem",
    }
