"""Kafka alone, exactly-once: the floor under the detector's figures on the same cluster.

``python -m fraudstream.bench.floor [--max-idle S]`` (topics and cluster from the environment,
like a detector) consumes ``input`` and, for every message, produces one ``output`` message the
size of a real decision (the transaction's JSON plus a 30-feature object), in Kafka transactions
with the consumed offsets: the detector's commit protocol with none of its work (no validation,
features, rules, model or PostgreSQL). The bench runs it in place of the detector:

* on the preloaded input, its rate is what the cluster and the client library allow a single
  consumer-producer on this machine: a ceiling no detector process can pass;
* at a fixed offered rate, each batch is committed as soon as it arrives, so its latency is the
  transaction protocol's own (``AddPartitionsToTxn``, produce with ``acks=all``,
  ``TxnOffsetCommit``, ``EndTxn``, the markers, the ``read_committed`` fetch): a floor no
  detector committing in Kafka transactions can go under.
"""

from __future__ import annotations

import argparse
import signal
import time
import uuid
from typing import cast

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudstream.bench.progress import FLOOR_GROUP
from fraudstream.infra.topics import max_message_bytes
from fraudstream.pipeline.consume import consume_ready
from fraudstream.pipeline.txn import batch_bytes, produce, producer_config
from fraudstream.settings import load_settings

#: Stands for a decision's ``features`` (30 names and values, as the detector publishes them).
FEATURES = (
    b',"features":{'
    + b",".join(b'"FEATURE_%02d_OF_THE_DETECTOR":%.12f' % (i, i * 1.2345678901) for i in range(30))
    + b'},"score":0.0123456789,"decision":"approve","reasons":[],"model_version":null,'
    b'"rules_version":1,"processed_at":"2026-01-01T00:00:00.000000+00:00"}'
)
BATCH = 20_000  # the detector's default batch size


def decision_sized(value: bytes) -> bytes:
    """The input transaction (a JSON object) with a decision's extra fields appended."""
    return value.rstrip()[:-1] + FEATURES


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-idle", type=float, default=600.0, help="stop after this long without input")
    a = ap.parse_args(argv)
    settings = load_settings()
    kafka = settings.kafka_client_config()
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    consumer = Consumer({
        **kafka, "group.id": FLOOR_GROUP, "enable.auto.commit": False,
        "isolation.level": "read_committed", "auto.offset.reset": "earliest",
        "fetch.max.bytes": 16 * 1024 * 1024, "log_level": 3,
    })
    batch = batch_bytes(max_message_bytes(AdminClient(kafka), settings.topic_output))  # as a worker's
    producer = Producer(producer_config(settings, f"fraudstream-floor-{uuid.uuid4().hex[:8]}", batch))
    producer.init_transactions(60)
    consumer.subscribe([settings.topic_input])
    out, idle_since = settings.topic_output, time.monotonic()
    try:
        while not stop["flag"] and time.monotonic() - idle_since < a.max_idle:
            msgs = [m for m in consume_ready(consumer, BATCH, 0.2) if m.error() is None]
            if not msgs:
                continue
            idle_since = time.monotonic()
            producer.begin_transaction()
            offsets: dict[int, int] = {}
            for m in msgs:
                produce(producer, out, decision_sized(m.value() or b"{}"), m.key())
                offsets[cast(int, m.partition())] = cast(int, m.offset()) + 1
            tps = [TopicPartition(settings.topic_input, p, o) for p, o in offsets.items()]
            producer.send_offsets_to_transaction(tps, consumer.consumer_group_metadata(), 60)
            producer.commit_transaction(60)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
