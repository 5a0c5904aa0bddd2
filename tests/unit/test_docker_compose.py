"""No Docker engine here: check the compose file against the local settings instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from fraudstream.settings import DEFAULT_KAFKA_BASE_PORT, DEFAULT_PG_PORT, Settings

ROOT = Path(__file__).resolve().parents[2]
compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
services = compose["services"]


def test_three_kraft_brokers_of_the_pinned_version() -> None:
    pom = (ROOT / "src/fraudstream/infra/resources/pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)<", pom).group(1)  # type: ignore[union-attr]
    brokers = [s for n, s in services.items() if n.startswith("kafka-")]
    assert len(brokers) == 3
    for i, b in enumerate(brokers, start=1):
        assert b["image"] == f"apache/kafka:{version}"
        env = b["environment"]
        assert env["KAFKA_NODE_ID"] == i
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
    host_ports = sorted(int(b["ports"][0].split(":")[0]) for b in brokers)
    assert host_ports == [DEFAULT_KAFKA_BASE_PORT + i for i in range(3)]


def test_topics_created_like_the_local_cluster() -> None:
    script = services["topics"]["command"][0]
    s = Settings()
    for topic in (s.topic_input, s.topic_output, s.topic_training, s.topic_dlq):
        assert re.search(rf"for t in .*\b{re.escape(topic)}\b", script)
    assert f"--partitions {s.topic_partitions}" in script
    assert f"--replication-factor {s.topic_replication_factor}" in script


def test_postgres_service_matches_settings() -> None:
    pg = services["postgres"]
    assert pg["image"] == "postgres:17"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    s = Settings()
    assert pg["environment"]["POSTGRES_DB"] == s.pg_database
    assert pg["environment"]["POSTGRES_USER"] == s.pg_user
    assert pg["ports"] == [f"{DEFAULT_PG_PORT}:5432"]


def test_app_services_use_the_settings_env_names() -> None:
    env = compose["x-app"]["environment"]
    fields = Settings.model_fields
    aliases = {a for f in fields.values() if f.validation_alias
               for a in getattr(f.validation_alias, "choices", [])}
    prefix = Settings.model_config["env_prefix"]
    for name in env:
        assert name in aliases or (
            name.startswith(prefix) and name.removeprefix(prefix).lower() in fields
        ), name
    assert "KAFKA_BOOTSTRAP_SERVERS" in env and "DATABASE_URL" in env


def test_state_logs_are_kept_like_the_local_cluster() -> None:
    from fraudstream.infra.topics import topic_specs

    script = services["topics"]["command"][0]
    kept = [s.name for s in topic_specs(Settings(), 3) if s.config.get("retention.ms") == "-1"]
    assert kept == ["input", "training"]
    assert re.search(r"for t in input training; do.*retention\.ms=-1", script, re.S)


def test_output_takes_the_detector_batches_like_the_local_cluster() -> None:
    from fraudstream.infra.topics import topic_specs

    script = services["topics"]["command"][0]
    output = next(s for s in topic_specs(Settings(), 3) if s.name == "output")
    limit = output.config["max.message.bytes"]
    assert re.search(rf"--entity-name output --add-config max\.message\.bytes={limit}\b", script)


def test_detectors_get_their_own_least_privilege_login() -> None:
    env = compose["x-app"]["environment"]
    detector = env["FRAUDSTREAM_DETECTOR_DATABASE_URL"]
    assert detector.startswith("postgresql://fraudstream_detect:")
    assert "grant-detector" in " ".join(services["migrate"]["command"])
