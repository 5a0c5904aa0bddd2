"""The publisher's batch size against the real brokers: sized from what ``output`` accepts.

A record batch larger than the topic's ``max.message.bytes`` is refused, and a refused batch
fails its Kafka transaction every time the worker redoes it: the size must come from the
topic, and hold for data that does not compress.
"""

from __future__ import annotations

import base64
import os

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fraudstream.infra.topics import OUTPUT_MAX_MESSAGE_BYTES, max_message_bytes, topic_specs
from fraudstream.pipeline.txn import BATCH_BYTES, DEFAULT_BATCH_BYTES, batch_bytes, producer_config

from .conftest import Infra, make_settings

pytestmark = pytest.mark.integration


def _topic(admin: AdminClient, name: str, config: dict[str, str]) -> None:
    admin.create_topics([NewTopic(name, 3, 3, config=config)])[name].result(30)


def test_output_as_created_takes_2_mb_batches_and_a_default_topic_does_not(infra: Infra,
                                                                           unique: str) -> None:
    admin = AdminClient({"bootstrap.servers": infra.bootstrap})
    output = next(s for s in topic_specs(make_settings(), 3) if s.name == "output")
    _topic(admin, f"out-{unique}", output.config)
    _topic(admin, f"plain-{unique}", {})
    assert max_message_bytes(admin, f"out-{unique}") == OUTPUT_MAX_MESSAGE_BYTES
    assert batch_bytes(max_message_bytes(admin, f"out-{unique}")) == BATCH_BYTES
    plain = max_message_bytes(admin, f"plain-{unique}")
    assert plain is not None and plain < BATCH_BYTES  # the brokers' default, ~1 MiB
    assert batch_bytes(plain) <= DEFAULT_BATCH_BYTES
    assert max_message_bytes(admin, f"missing-{unique}", timeout_s=5) is None


def _commit_incompressible(bootstrap: str, topic: str, batch: int, unique: str) -> None:
    """One transaction of 3,000 messages of random text (~1.4 kB, LZ4 cannot shrink them)."""
    settings = make_settings(kafka_bootstrap_servers=bootstrap)
    producer = Producer(producer_config(settings, f"batches-{unique}-{batch}", batch))
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3000):
        producer.produce(topic, base64.b64encode(os.urandom(1024)), str(i % 50).encode())
    producer.commit_transaction(60)


def test_batches_sized_from_the_topic_fit_it_even_when_nothing_compresses(infra: Infra,
                                                                          unique: str) -> None:
    admin = AdminClient({"bootstrap.servers": infra.bootstrap})
    topic = f"small-{unique}"
    _topic(admin, topic, {"max.message.bytes": str(512 * 1024)})
    # Sized from the topic: committed.
    _commit_incompressible(infra.bootstrap, topic, batch_bytes(max_message_bytes(admin, topic)), unique)
    # The 2 MB batches on that topic: refused (why the size is read, not assumed).
    with pytest.raises(KafkaException):
        _commit_incompressible(infra.bootstrap, topic, BATCH_BYTES, unique)
