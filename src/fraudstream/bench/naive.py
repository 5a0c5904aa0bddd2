"""The naive baseline: one message at a time, the way a first tutorial writes a detector.

Kept in the repo as the yardstick of ``fraudstream bench``. Per message it:

* ``Consumer.poll()`` one message, ``json.loads`` it;
* inserts the transaction into ``naive_transactions`` and commits;
* queries the customer's history from PostgreSQL (count and average amount of the previous
  30 days, count of the previous hour) - one ``SELECT`` per transaction;
* evaluates a few Python ``if`` rules (amount > 220, amount spike, velocity);
* for a suspicious transaction: one ``INSERT`` into ``naive_suspicious`` and a commit;
* produces the decision (JSON) to its output topic and commits the consumed offset
  synchronously.

There is no exactly-once here (a crash between the steps duplicates or loses work); the
history table has an index on ``(customer_id, tx_datetime)`` so that the baseline does not
slow down as it fills (a fairer comparison than a table scan per transaction).

``python -m fraudstream.bench.naive --seconds S --output-topic T --summary OUT.json``
(input topic, cluster and database from the environment). Bounded: stops after ``S``
seconds, ``--max-messages``, or ``--idle-seconds`` without input.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from datetime import datetime, timedelta

import psycopg
from confluent_kafka import Consumer, Producer

from fraudstream.settings import load_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS naive_transactions (
    transaction_id text PRIMARY KEY,
    tx_datetime    timestamptz NOT NULL,
    customer_id    text NOT NULL,
    terminal_id    text NOT NULL,
    tx_amount      double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS naive_transactions_customer_idx
    ON naive_transactions (customer_id, tx_datetime);
CREATE TABLE IF NOT EXISTS naive_suspicious (
    transaction_id text PRIMARY KEY,
    tx_datetime    timestamptz NOT NULL,
    customer_id    text NOT NULL,
    tx_amount      double precision NOT NULL,
    reasons        text NOT NULL
);
"""


def evaluate(amount: float, count_30d: int, avg_30d: float | None, count_1h: int) -> list[str]:
    """The baseline's rules, plain Python per transaction."""
    reasons = []
    if amount > 220:
        reasons.append("HIGH_AMOUNT")
    if count_30d >= 5 and avg_30d and amount >= 4 * avg_30d:
        reasons.append("AMOUNT_SPIKE")
    if count_1h >= 5:
        reasons.append("VELOCITY_1H")
    return reasons


def run(
    seconds: float, output_topic: str, group: str, max_messages: int | None, idle_seconds: float
) -> dict[str, float]:
    settings = load_settings()
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    db = psycopg.connect(settings.dsn)
    db.execute(SCHEMA)
    db.commit()
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "log_level": 3,
        }
    )
    producer = Producer({**settings.kafka_client_config(), "acks": "all", "log_level": 3})
    consumer.subscribe([settings.topic_input])
    processed = suspicious = 0
    first = last = None
    started = time.monotonic()
    idle_since = started
    try:
        while not stop["flag"] and time.monotonic() - started < seconds:
            if max_messages is not None and processed >= max_messages:
                break
            msg = consumer.poll(1.0)
            if msg is None:
                if processed and time.monotonic() - idle_since > idle_seconds:
                    break
                continue
            if msg.error():
                continue
            tx = json.loads(msg.value() or b"")
            when = datetime.fromisoformat(tx["tx_datetime"])
            amount = float(tx["tx_amount"])
            customer = str(tx["customer_id"])
            db.execute(
                "INSERT INTO naive_transactions VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (str(tx["transaction_id"]), when, customer, str(tx["terminal_id"]), amount),
            )
            db.commit()
            row = db.execute(
                "SELECT count(*), avg(tx_amount), count(*) FILTER (WHERE tx_datetime >= %s)"
                " FROM naive_transactions WHERE customer_id = %s AND tx_datetime >= %s AND tx_datetime < %s",
                (when - timedelta(hours=1), customer, when - timedelta(days=30), when),
            ).fetchone()
            db.commit()
            assert row is not None  # an aggregate always returns its one row
            count_30d, avg_30d, count_1h = row
            reasons = evaluate(amount, count_30d, avg_30d, count_1h)
            decision = "review" if reasons else "approve"
            if reasons:
                db.execute(
                    "INSERT INTO naive_suspicious VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (str(tx["transaction_id"]), when, customer, amount, ",".join(reasons)),
                )
                db.commit()
                suspicious += 1
            producer.produce(
                output_topic, json.dumps({**tx, "decision": decision, "reasons": reasons}), customer
            )
            producer.poll(0)
            consumer.commit(message=msg, asynchronous=False)
            processed += 1
            now = time.monotonic()
            idle_since = now
            first = now if first is None else first
            last = now
    finally:
        producer.flush(30)
        consumer.close()
        db.close()
    span = (last - first) if first is not None and last is not None else 0.0
    return {
        "processed": processed,
        "suspicious": suspicious,
        "seconds": span,
        "rate": (processed - 1) / span if span > 0 else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--output-topic", required=True)
    ap.add_argument("--group", default="naive-baseline")
    ap.add_argument("--max-messages", type=int, default=None)
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--summary", required=True)
    a = ap.parse_args(argv)
    result = run(a.seconds, a.output_topic, a.group, a.max_messages, a.idle_seconds)
    with open(a.summary, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
