"""The topics the system uses, created idempotently with the AdminClient.

Replication is capped by the number of brokers so the light one-node mode works with the
same code; ``min.insync.replicas`` is 2 whenever there are at least 3 replicas, so a write
acknowledged with ``acks=all`` survives the loss of one broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from fraudstream.settings import Settings

#: ``output``'s largest record batch (``max.message.bytes``; the broker's default is 1 MiB):
#: room for the publisher's 2 MB batches even if they did not compress (``txn.batch_bytes``).
OUTPUT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings, brokers: int) -> list[TopicSpec]:
    """Every topic of the system, sized for a cluster of ``brokers`` nodes."""
    rf = min(settings.topic_replication_factor, brokers)
    isr = {"min.insync.replicas": str(min(2, rf))}
    # Message timestamps are event times (the detector seeks by them to rebuild state), so
    # time-based retention counts in event time: a replay of 2018 data would be deleted at
    # once under the broker's 7-day default. The logs state is rebuilt from keep
    # `topic_retention_ms` (-1: forever; at least the 38-day feature horizon otherwise).
    keep = {**isr, "retention.ms": str(settings.topic_retention_ms)}
    p = settings.topic_partitions
    return [
        TopicSpec(settings.topic_input, p, rf, dict(keep)),
        TopicSpec(settings.topic_output, p, rf,
                  {**isr, "max.message.bytes": str(OUTPUT_MAX_MESSAGE_BYTES)}),
        TopicSpec(settings.topic_training, p, rf, dict(keep)),
        TopicSpec(settings.topic_dlq, p, rf, dict(isr)),
    ]


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], timeout_s: float = 30) -> list[str]:
    """Create the missing topics; return the names created. Existing ones are left alone."""
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication_factor, config=s.config) for s in missing],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    return created


def max_message_bytes(admin: AdminClient, topic: str, timeout_s: float = 10) -> int | None:
    """The topic's ``max.message.bytes`` (its own or the brokers' default), or None when it
    cannot be read (no such topic, no permission to describe it, the cluster unreachable)."""
    try:
        res = ConfigResource(ResourceType.TOPIC, topic)
        configs = admin.describe_configs([res], request_timeout=timeout_s)[res].result(timeout_s)
        return int(configs["max.message.bytes"].value)
    except (KafkaException, KeyError, ValueError, TypeError, TimeoutError):
        return None
