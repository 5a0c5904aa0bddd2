"""An isolated pipeline on the shared services: topics and a database of the bench's own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import structlog
from confluent_kafka.admin import AdminClient
from psycopg import sql

import fraudstream
from fraudstream.db.migrate import migrate
from fraudstream.db.roles import provision_detector
from fraudstream.infra.topics import ensure_topics, topic_specs
from fraudstream.settings import Settings

#: Where the ``fraudstream`` package lives (children import it from the same place).
log = structlog.get_logger(__name__)
_PACKAGE_PARENT = str(Path(fraudstream.__file__).resolve().parents[1])
#: Settings of the detectors' own behaviour that the sandbox passes on (every other
#: ``FRAUDSTREAM_*`` variable may point at the user's cluster, database or topics: dropped),
#: so that a bench can measure them: e.g. ``FRAUDSTREAM_PUBLISHER_PROCESS=false`` or
#: ``FRAUDSTREAM_PUBLISHER_NICE=0``.
PASSED_ON = frozenset({"FRAUDSTREAM_PUBLISHER_PROCESS", "FRAUDSTREAM_PUBLISHER_NICE",
                       "FRAUDSTREAM_BATCH_SIZE", "FRAUDSTREAM_LOG_LEVEL"})


def inherited(environ: Mapping[str, str]) -> dict[str, str]:
    """What the sandbox's processes inherit of the environment (see ``PASSED_ON``)."""
    return {k: v for k, v in environ.items()
            if not k.startswith(("FRAUDSTREAM_", "KAFKA_", "DATABASE_")) or k in PASSED_ON}


@dataclass
class Sandbox:
    """Unique topics + a unique migrated database, and the child processes run against them."""

    settings: Settings
    env: dict[str, str]
    log_dir: Path
    database: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def create(cls, base: Settings, log_dir: Path, tag: str = "") -> Sandbox:
        unique = f"{tag}{uuid.uuid4().hex[:8]}"
        database = f"bench_{unique}"
        with psycopg.connect(base.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        dsn = _with_database(base.dsn, database)
        bootstrap = base.bootstrap_servers()
        settings = base.model_copy(
            update={
                "kafka_bootstrap_servers": bootstrap,
                "topic_input": f"bench-{unique}-input",
                "topic_output": f"bench-{unique}-output",
                "topic_training": f"bench-{unique}-training",
                "topic_dlq": f"bench-{unique}-input.dlq",
            }
        )
        settings = settings.model_copy(update={"database_url": type(base.database_url)(dsn)})
        admin = AdminClient(settings.kafka_client_config())
        brokers = len(admin.list_topics(timeout=30).brokers)
        ensure_topics(admin, topic_specs(settings, brokers))
        migrate(settings.dsn)
        # The detectors run as the deployment's least-privileged login, as they would in
        # production (the sandbox database's grants come with the migrations).
        detector = {}
        if base.detector_dsn != base.dsn:
            detector_dsn = _with_database(base.detector_dsn, database)
            provision_detector(dsn, detector_dsn)
            detector = {"FRAUDSTREAM_DETECTOR_DATABASE_URL": detector_dsn}
        env = {
            **inherited(os.environ),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": dsn,
            **detector,
            "FRAUDSTREAM_TOPIC_INPUT": settings.topic_input,
            "FRAUDSTREAM_TOPIC_OUTPUT": settings.topic_output,
            "FRAUDSTREAM_TOPIC_TRAINING": settings.topic_training,
            "FRAUDSTREAM_TOPIC_DLQ": settings.topic_dlq,
            "FRAUDSTREAM_LOG_JSON": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (_PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p),
        }
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings, env, log_dir, database)

    # ---- child processes ---------------------------------------------------------------
    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        """Start ``python -m <args>`` with the sandbox environment; output to a log file."""
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs.append(proc)
        return proc

    def start_detector(self, index: int) -> subprocess.Popen:
        return self.spawn(f"{self.database}-detect-{index}", "fraudstream.cli", "detect")

    def stop(self, procs: list[subprocess.Popen] | None = None, timeout_s: float = 30.0) -> None:
        """SIGTERM our own children (by pid), wait, SIGKILL the ones left."""
        procs = self.procs if procs is None else procs
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    # ---- inspection and cleanup --------------------------------------------------------
    def count_rows(self, table: str = "fraudulent_transactions") -> int:
        with psycopg.connect(self.settings.dsn) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        return int(row[0]) if row else 0

    def destroy(self, base: Settings) -> None:
        """Stop the children, delete the topics and drop the database (best effort)."""
        self.stop()
        s = self.settings
        admin = AdminClient(s.kafka_client_config())
        prefix = s.topic_input.removesuffix("input")
        topics = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
        if topics:
            for name, f in admin.delete_topics(topics, operation_timeout=30).items():
                try:
                    f.result()
                except Exception as exc:  # noqa: BLE001 - best effort, but say so
                    log.warning("bench.topic.delete_failed", topic=name, error=str(exc))
        with contextlib.suppress(Exception), psycopg.connect(base.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database))
            )


def _with_database(url: str, database: str) -> str:
    """``url`` (a ``postgresql://`` URL) naming ``database`` instead of its own."""
    return url.rsplit("/", 1)[0] + f"/{database}"
