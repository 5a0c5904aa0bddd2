"""Where an exactly-once commit's time goes on this cluster: each step of a Kafka transaction.

``.venv/bin/python benchmarks/txn_steps.py [--rounds 40] [--messages 250]`` (cluster from the
environment, like every command: ``fraudstream infra up`` first). A transactional producer
sends ``--messages`` decision-sized messages to a topic of its own (3 partitions, RF 3) per
transaction, back to back as the detector does, and times each step; a ``read_committed``
consumer times when the transaction becomes visible. Bounded (``--rounds``), deletes its
topic. Prints median and max per step in ms, the first 5 rounds excluded (warm-up).

What it showed on the 2-core machine (idle cluster, 2026-11-26; two runs): ``send_offsets_to_transaction``
~20-50 ms (the coordinator refuses the next transaction's ``AddPartitionsToTxn`` /
``AddOffsetsToTxn`` with CONCURRENT_TRANSACTIONS until the previous one's markers are written,
and librdkafka retries after 10-20 ms; its produce waits for the partitions to be registered),
``commit_transaction`` ~15-30 ms (flush with ``acks=all``, ``EndTxn``), then ~10-20 ms more until
a ``read_committed`` consumer sees it (markers written and replicated): ~50-100 ms a transaction. Run with
``debug=eos`` in the producer config to see the refused requests in librdkafka's log.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fraudstream.bench.floor import decision_sized
from fraudstream.pipeline.txn import producer_config
from fraudstream.settings import load_settings

STEPS = ("begin + produce", "send_offsets_to_transaction", "commit_transaction", "visible (read_committed)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--messages", type=int, default=250,
                    help="per transaction (5,000 tx/s: ~250 a batch)")
    a = ap.parse_args()
    settings = load_settings()
    kafka = settings.kafka_client_config()
    topic = f"txn-steps-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(kafka)
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(30)
    value = decision_sized(b'{"transaction_id":"1","tx_datetime":"2018-04-01T00:00:31+00:00"}')
    producer = Producer(producer_config(settings, f"txn-steps-{uuid.uuid4().hex}"))
    consumer = Consumer({
        **kafka, "group.id": f"txn-steps-{uuid.uuid4().hex[:8]}", "isolation.level": "read_committed",
        "auto.offset.reset": "earliest", "enable.auto.commit": False, "fetch.wait.max.ms": 10, "log_level": 3,
    })
    try:
        producer.init_transactions(60)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
        meta = consumer.consumer_group_metadata()
        times: dict[str, list[float]] = {s: [] for s in STEPS}
        seen = 0
        for r in range(a.rounds):
            t0 = time.perf_counter()
            producer.begin_transaction()
            for i in range(a.messages):
                producer.produce(topic, value, str(i).encode())
            t1 = time.perf_counter()
            producer.send_offsets_to_transaction([TopicPartition(topic, 0, r + 1)], meta, 30)
            t2 = time.perf_counter()
            producer.commit_transaction(30)
            t3 = time.perf_counter()
            deadline = t3 + 30
            while seen < (r + 1) * a.messages and time.perf_counter() < deadline:
                seen += sum(1 for m in consumer.consume(10000, 0.001) if m.error() is None)
            t4 = time.perf_counter()
            for step, d in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                times[step].append(d * 1000)
        for step, v in times.items():
            v = v[5:]
            print(f"{step:30s} median {statistics.median(v):7.1f} ms   max {max(v):7.1f} ms")
        total = [sum(x) for x in zip(*(v[5:] for v in times.values()), strict=True)]
        print(f"{'one transaction, end to end':30s} median {statistics.median(total):7.1f} ms")
    finally:
        consumer.close()
        admin.delete_topics([topic])


if __name__ == "__main__":
    main()
