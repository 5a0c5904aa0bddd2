"""Bad messages mixed into valid traffic: all dead-lettered with a reason, nothing else lost."""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest
from confluent_kafka import Producer

from fraudstream.generator.command import to_contract_frame
from fraudstream.generator.handbook import generate_dataset
from tests.corpus import cases, duplicate_pair

from .conftest import Pipeline
from .streams import decisions, feed, read_topic

pytestmark = pytest.mark.integration


def test_bad_corpus_goes_to_dlq_and_valid_traffic_is_decided(pipeline: Pipeline) -> None:
    _, _, tx = generate_dataset(300, 600, 20, "2018-04-01")
    frame = to_contract_frame(tx)
    frame = frame[frame["tx_amount"] >= 0.005]
    half = len(frame) // 2
    corpus = cases() + duplicate_pair()
    raw = Producer({"bootstrap.servers": pipeline.settings.bootstrap_servers(), "enable.idempotence": True})

    feed(pipeline.settings, frame.iloc[:half], label_delay=None)
    for _, value, key, _ in corpus:  # in the middle of the stream
        raw.produce(pipeline.settings.topic_input, value, key)
    assert raw.flush(30) == 0
    feed(pipeline.settings, frame.iloc[half:], label_delay=None)

    worker = pipeline.start_detector("--batch-size", "500")
    bad = [c for c in corpus if c[3] is not None]
    good_extra = [c for c in corpus if c[3] is None]
    dlq = read_topic(pipeline.settings, pipeline.settings.topic_dlq, until=lambda out: len(out) >= len(bad))
    expected_valid = len(frame) + len(good_extra)
    out = decisions(read_topic(pipeline.settings, pipeline.settings.topic_output,
                               until=lambda o: len(o) >= expected_valid))
    assert worker.poll() is None, "the worker died"

    assert len(dlq) == len(bad)
    reasons = Counter(dict(m.headers())["dlq.reason"].decode() for m in dlq)
    assert reasons == Counter(c[3] for c in bad)
    for m in dlq:
        h = dict(m.headers())
        assert h["dlq.topic"].decode() == pipeline.settings.topic_input
        assert int(h["dlq.partition"]) >= 0 and int(h["dlq.offset"]) >= 0
    dlq_values = Counter(m.value() for m in dlq)
    assert dlq_values == Counter(c[1] for c in bad)  # unchanged payloads

    ids = Counter(d["transaction_id"] for d in out)
    assert len(out) == expected_valid and all(v == 1 for v in ids.values())
    assert set(frame["transaction_id"]) <= set(ids)
    assert "1'; DROP TABLE fraudulent_transactions;--" in ids
    with psycopg.connect(pipeline.settings.dsn) as conn:
        n = conn.execute("SELECT count(*) FROM fraudulent_transactions").fetchone()
        assert n is not None and n[0] == sum(d["decision"] != "approve" for d in out)
