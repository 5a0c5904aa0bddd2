"""The local embedded default: a Kafka cluster, PostgreSQL, topics and schema, as one unit."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from fraudstream.db.migrate import migrate
from fraudstream.db.roles import provision_detector
from fraudstream.infra.kafka import KafkaCluster
from fraudstream.infra.postgres import LocalPostgres
from fraudstream.infra.topics import ensure_topics, topic_specs
from fraudstream.settings import Settings


def up(settings: Settings, nodes: int | None = None) -> KafkaCluster:
    """Start (idempotently) everything the pipeline needs on this machine."""
    cluster = KafkaCluster(settings, nodes)
    cluster.up()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    ensure_topics(admin, topic_specs(settings, cluster.n))
    LocalPostgres(settings).up()
    migrate(settings.dsn)
    provision_detector(settings.dsn, settings.detector_dsn)  # the detector's own login
    return cluster


def down(settings: Settings, purge: bool = False) -> None:
    KafkaCluster(settings).down(purge=purge)
    LocalPostgres(settings).down(purge=purge)
