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
# Overridable so that two checkouts can run their integration suites side by side. Below the
# kernel's ephemeral range (32768+): a listening port there can be held by a client's own end.
TEST_KAFKA_BASE_PORT = int(os.environ.get("FRAUDSTREAM_TEST_KAFKA_BASE_PORT", "29092"))
TEST_PG_PORT = int(os.environ.get("FRAUDSTREAM_TEST_PG_PORT", "29432"))


@dataclass
class Infra:
    settings: Settings
    cluster: KafkaCluster
    up_seconds: float

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap


TEST_DETECTOR_LOGIN = ("fraudstream_detect", "test-detect-pw")


def detector_url(database: str) -> str:
    user, password = TEST_DETECTOR_LOGIN
    return f"postgresql://{user}:{password}@127.0.0.1:{TEST_PG_PORT}/{database}"


def make_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "state_dir": ROOT / ".state" / "test",
        "cache_dir": ROOT / ".cache",
        "kafka_base_port": TEST_KAFKA_BASE_PORT,
        "kafka_bootstrap_servers": "",
        "database_url": f"postgresql://admin:test-admin-pw@127.0.0.1:{TEST_PG_PORT}/fraud_detection",
        # The detectors of every test run as the least-privilege login that `infra` creates.
        "detector_database_url": detector_url("fraud_detection"),
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    settings = make_settings()
    local.down(settings, purge=True)  # a previous run killed midway leaves state behind
    started = time.monotonic()
    try:
        cluster = local.up(settings, nodes=3)
    except BaseException:
        local.down(settings, purge=True)  # a half-started cluster must not outlive the run
        raise
    up_seconds = time.monotonic() - started
    try:
        yield Infra(settings, cluster, up_seconds)
    finally:
        local.down(settings, purge=os.environ.get("FRAUDSTREAM_KEEP_TEST_STATE") != "1")


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


# ---- isolated pipelines: own topics and own database on the shared services ----------------
import contextlib  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

import psycopg  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from psycopg import sql  # noqa: E402

from fraudstream.db.migrate import migrate  # noqa: E402
from fraudstream.infra.topics import ensure_topics, topic_specs  # noqa: E402


@dataclass
class Pipeline:
    """Topics and a database of one test's own, and helpers to run detector processes."""

    settings: Settings
    env: dict[str, str]
    log_dir: Path
    procs: list[subprocess.Popen] = None  # type: ignore[assignment]

    def start_detector(self, *args: str, name: str = "detect") -> subprocess.Popen:
        path = self.log_dir / f"{name}-{len(self.procs)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "fraudstream.cli", "detect", *args],
            env=self.env, stdout=path.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
        )
        proc.log_path = path  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    @staticmethod
    def events(proc: subprocess.Popen, predicate: Callable[[dict], bool]) -> list[dict]:
        """The worker's JSON log lines matching ``predicate`` so far."""
        found = []
        for line in proc.log_path.read_text(errors="replace").splitlines():  # type: ignore[attr-defined]
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if predicate(event):
                        found.append(event)
        return found

    def wait_for_log(
        self, proc: subprocess.Popen, predicate: Callable[[dict], bool], timeout_s: float = 120
    ) -> dict:
        """Wait until the worker's JSON log has a line matching ``predicate``; return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.events(proc, predicate)
            if found:
                return found[0]
            assert proc.poll() is None, f"worker exited with {proc.returncode} before the awaited log line"
            time.sleep(0.2)
        raise AssertionError(f"no matching log line within {timeout_s} s")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def isolated_settings(infra: Infra, unique: str, db: str, **overrides: object) -> Settings:
    """Settings on topics and a migrated database of the caller's own, on the shared services."""
    with psycopg.connect(infra.settings.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    settings = make_settings(
        database_url=infra.settings.dsn.rsplit("/", 1)[0] + f"/{db}",
        kafka_bootstrap_servers=infra.bootstrap,
        topic_input=f"input-{unique}", topic_output=f"output-{unique}",
        topic_training=f"training-{unique}", topic_dlq=f"input.dlq-{unique}",
        **overrides,
    )
    ensure_topics(AdminClient({"bootstrap.servers": infra.bootstrap}), topic_specs(settings, 3))
    migrate(settings.dsn)
    return settings


@pytest.fixture
def pipeline(infra: Infra, unique: str, tmp_path: Path) -> Iterator[Pipeline]:
    db = f"fraud_{unique}"
    settings = isolated_settings(infra, unique, db, detector_database_url=detector_url(db))
    dsn = settings.dsn
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FRAUDSTREAM_", "KAFKA_", "DATABASE_"))},
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "DATABASE_URL": dsn,
        "FRAUDSTREAM_DETECTOR_DATABASE_URL": settings.detector_dsn,
        "FRAUDSTREAM_TOPIC_INPUT": settings.topic_input,
        "FRAUDSTREAM_TOPIC_OUTPUT": settings.topic_output,
        "FRAUDSTREAM_TOPIC_TRAINING": settings.topic_training,
        "FRAUDSTREAM_TOPIC_DLQ": settings.topic_dlq,
        "FRAUDSTREAM_LOG_JSON": "1",
        "PYTHONPATH": str(ROOT / "src"),
    }
    p = Pipeline(settings, env, tmp_path, [])
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture(scope="session")
def handbook_60d_frames():  # noqa: ANN201 - see handbook_60d
    """The contract frame of the handbook's first 60 days, and the offline reference features
    of its valid rows (computed once per session: both detector test modules use them)."""
    import numpy as np

    from fraudstream.generator.command import to_contract_frame
    from fraudstream.generator.handbook import generate_dataset
    from tests.reference.handbook_features import reference_features

    _, _, tx = generate_dataset(5000, 10000, 60, "2018-04-01")
    frame = to_contract_frame(tx)
    valid = tx[np.rint(tx["TX_AMOUNT"] * 100) > 0]  # amounts of 0.00 are dead-lettered
    ref = reference_features(valid)
    ref.index = ref.index.astype(str)
    return frame, ref


@pytest.fixture
def handbook_60d(handbook_60d_frames):  # noqa: ANN001, ANN201
    return handbook_60d_frames
