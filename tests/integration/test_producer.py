"""Replay through the real cluster: event-time order per partition, labels at the delay."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime, timedelta

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudstream.contracts.messages import Label
from fraudstream.generator.command import to_contract_frame
from fraudstream.generator.handbook import generate_dataset
from fraudstream.infra.topics import TopicSpec, ensure_topics
from fraudstream.producer.kafka import BatchProducer
from fraudstream.producer.replay import replay

from .conftest import Infra

pytestmark = pytest.mark.integration
# Event-time stamped (2018): without this the brokers' 7-day retention may delete what was
# just produced before it is read back (seen once: 71,262 of 100,000 read).
KEEP = {"retention.ms": "-1"}


def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 90) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}",
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(3)])
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        out.extend(m for m in c.consume(10000, timeout=1) if m.error() is None)
    c.close()
    return out


def test_replay_100k_lands_in_event_time_order_with_delayed_labels(infra: Infra, unique: str) -> None:
    _, _, tx = generate_dataset(1000, 2000, 60, "2018-04-01")
    frame = to_contract_frame(tx).iloc[:100_000]
    settings = infra.settings.model_copy(update={
        "topic_input": f"input-{unique}", "topic_training": f"training-{unique}"})
    ensure_topics(AdminClient({"bootstrap.servers": infra.bootstrap}), [
        TopicSpec(name, 3, 3, KEEP) for name in (settings.topic_input, settings.topic_training)])
    producer = BatchProducer(settings)
    summary = replay(producer, frame, topic_input=settings.topic_input,
                     topic_training=settings.topic_training, label_delay=timedelta(days=7))
    assert summary.transactions == 100_000 and summary.labels == 100_000
    assert summary.stats.errors == 0 and summary.stats.delivered == 200_000

    txs = read_all(infra.bootstrap, settings.topic_input, 100_000)
    assert len(txs) == 100_000
    # The handbook simulator rounds a few amounts to 0.00: they are sent as generated (the
    # detector dead-letters them), so decode without the contract's amount > 0 check here.
    dec = msgspec.json.Decoder(dict)
    last: dict[int, float] = defaultdict(float)
    partition_of: dict[str, int] = {}
    times = {}
    for m in txs:
        t = dec.decode(m.value())
        assert m.key().decode() == t["customer_id"]
        assert partition_of.setdefault(t["customer_id"], m.partition()) == m.partition()
        when = datetime.fromisoformat(t["tx_datetime"])
        ts = when.timestamp()
        assert ts >= last[m.partition()], "event-time order broken within a partition"
        assert m.timestamp()[1] == round(ts * 1000)
        last[m.partition()] = ts
        times[t["transaction_id"]] = when
    assert sorted(times, key=int) == frame["transaction_id"].tolist()

    labels = read_all(infra.bootstrap, settings.topic_training, 100_000)
    assert len(labels) == 100_000
    ldec = msgspec.json.Decoder(Label)
    frauds = 0
    last_l: dict[int, float] = defaultdict(float)
    for m in labels:
        lb = ldec.decode(m.value())
        assert lb.labeled_at - times[lb.transaction_id] == timedelta(days=7)
        assert m.key().decode() == lb.transaction_id
        assert lb.labeled_at.timestamp() >= last_l[m.partition()]
        last_l[m.partition()] = lb.labeled_at.timestamp()
        frauds += lb.is_fraud
    assert frauds == int(frame["is_fraud"].sum()) > 0


def test_live_mode_paces_stamps_now_and_delays_labels(infra: Infra, unique: str) -> None:
    from datetime import UTC

    from fraudstream.producer.replay import live

    _, _, tx = generate_dataset(50, 100, 5, "2018-04-01")
    frame = to_contract_frame(tx)
    settings = infra.settings.model_copy(update={
        "topic_input": f"live-in-{unique}", "topic_training": f"live-tr-{unique}"})
    ensure_topics(AdminClient({"bootstrap.servers": infra.bootstrap}), [
        TopicSpec(name, 3, 3, KEEP) for name in (settings.topic_input, settings.topic_training)])
    started = datetime.now(UTC)
    summary = live(BatchProducer(settings), frame, topic_input=settings.topic_input,
                   topic_training=settings.topic_training, label_delay=timedelta(seconds=1),
                   rate=1000, count=2000)
    assert summary.transactions == 2000
    assert 1.5 <= summary.seconds <= 10, f"2000 tx at 1000 tx/s took {summary.seconds:.1f}s"
    txs = read_all(infra.bootstrap, settings.topic_input, 2000)
    dec = msgspec.json.Decoder(dict)
    times = {}
    for m in txs:
        t = dec.decode(m.value())
        when = datetime.fromisoformat(t["tx_datetime"])
        assert started - timedelta(seconds=1) <= when <= datetime.now(UTC)
        times[t["transaction_id"]] = when
    assert len(times) == 2000  # fresh ids even though the frame is cycled
    labels = read_all(infra.bootstrap, settings.topic_training, summary.labels)
    assert summary.labels == len(labels) > 0
    for m in labels:
        lb = msgspec.json.decode(m.value(), type=Label)
        assert lb.labeled_at - times[lb.transaction_id] >= timedelta(seconds=1)
