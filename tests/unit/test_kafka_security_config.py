"""Broker properties and format arguments of a SASL/SCRAM (+TLS) secured local node."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudstream.infra import kafka
from fraudstream.infra.kafka import BrokerSecurity, KafkaCluster, ScramUser
from fraudstream.settings import Settings

USERS = (ScramUser("broker", "b-pw"), ScramUser("app", "a-pw"))


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_sasl_and_tls_listeners(tmp_path: Path) -> None:
    sec = BrokerSecurity(USERS, keystore=tmp_path / "ks.p12", keystore_password="ks-pw")
    c = KafkaCluster(Settings(state_dir=tmp_path, kafka_base_port=35092), nodes=1, security=sec)
    p = _props(c.properties(c.nodes[0]))
    assert p["listeners"] == ("SASL_PLAINTEXT://127.0.0.1:35092,SASL_SSL://127.0.0.1:35292,"
                              "CONTROLLER://127.0.0.1:35192")
    assert p["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:35092,SASL_SSL://127.0.0.1:35292"
    assert p["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert p["sasl.enabled.mechanisms"] == p["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    jaas = p["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    assert 'username="broker" password="b-pw"' in jaas
    assert p["ssl.keystore.location"] == str(tmp_path / "ks.p12")
    assert "PLAINTEXT://" not in p["listeners"].replace("SASL_PLAINTEXT://", "")  # no open listener
    assert c.client_config()["security.protocol"] == "SASL_PLAINTEXT"
    assert c.tls_bootstrap == "127.0.0.1:35292"


def test_scram_users_are_added_at_format_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = KafkaCluster(Settings(state_dir=tmp_path), nodes=1, security=BrokerSecurity(USERS))
    c.nodes[0].home.mkdir(parents=True)
    ran: list[list[str]] = []
    monkeypatch.setattr(kafka, "ensure_jars", lambda s: tmp_path)
    monkeypatch.setattr(kafka.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or _Done())
    c._format(c.nodes[0])
    cmd = ran[0]
    scram = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--add-scram"]
    assert scram == ["SCRAM-SHA-512=[name=broker,password=b-pw]", "SCRAM-SHA-512=[name=app,password=a-pw]"]


class _Done:
    returncode = 0
    stdout = stderr = ""


def test_passwords_stay_out_of_reprs_and_bad_ones_are_refused() -> None:
    assert "b-pw" not in repr(BrokerSecurity(USERS, keystore_password="ks-pw"))
    assert "ks-pw" not in repr(BrokerSecurity(USERS, keystore_password="ks-pw"))
    with pytest.raises(ValueError):
        BrokerSecurity((ScramUser("x", "a,b]"),))  # would break the --add-scram syntax
    with pytest.raises(ValueError):
        BrokerSecurity(())


def test_unsecured_cluster_is_unchanged(tmp_path: Path) -> None:
    c = KafkaCluster(Settings(state_dir=tmp_path, kafka_base_port=30000), nodes=1)
    p = _props(c.properties(c.nodes[0]))
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:30000,CONTROLLER://127.0.0.1:30100"
    assert "sasl.enabled.mechanisms" not in p
    assert c.client_config() == {"bootstrap.servers": "127.0.0.1:30000"}
