"""Session fixtures: the real Kafka cluster (3 KRaft brokers) and the real PostgreSQL.

They are started once per test session on ports apart from the demo's, in a state folder of
the test run's own, and stopped (and purged) at the end.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fraudstream.infra import local
from fraudstream.infra.kafka import KafkaCluster
from fraudstream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TEST_KAFKA_BASE_PORT = 29092
TEST_PG_PORT = 55433


@dataclass
class Infra:
    settings: Settings
    cluster: KafkaCluster
    up_seconds: float

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap


def make_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "state_dir": ROOT / ".state" / "test",
        "cache_dir": ROOT / ".cache",
        "kafka_base_port": TEST_KAFKA_BASE_PORT,
        "kafka_bootstrap_servers": "",
        "database_url": f"postgresql://admin:test-admin-pw@127.0.0.1:{TEST_PG_PORT}/fraud_detection",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    settings = make_settings()
    local.down(settings, purge=True)  # a previous run killed midway leaves state behind
    started = time.monotonic()
    cluster = local.up(settings, nodes=3)
    up_seconds = time.monotonic() - started
    try:
        yield Infra(settings, cluster, up_seconds)
    finally:
        local.down(settings, purge=os.environ.get("FRAUDSTREAM_KEEP_TEST_STATE") != "1")


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
