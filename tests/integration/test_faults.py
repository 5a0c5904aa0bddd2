"""Faults while streaming: scaling the group, graceful stops, broker and PostgreSQL restarts.

Each test replays the handbook's first 60 days (with labels 7 days later) and checks, after the
fault, the issue's guarantees: one decision per valid transaction (read_committed), one row per
suspicious one, and features equal to the independent offline computation.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from fraudstream.infra.postgres import LocalPostgres

from .conftest import Infra, Pipeline
from .streams import feed, read_topic
from .test_detector import check_exactly_once, check_features, expected_valid

pytestmark = pytest.mark.integration


def owns_partitions(event: dict) -> bool:
    return event.get("event") == "partitions.assigned" and bool(event.get("partitions"))


def has_decided(event: dict) -> bool:
    return event.get("event") == "worker.progress" and event.get("processed", 0) > 0


def test_scale_one_to_three_to_one_with_sigterm(pipeline: Pipeline, handbook_60d) -> None:
    """1 -> 3 -> 1 workers while a 60-day backlog is consumed. The first worker keeps one
    partition while the others start, so it runs weeks of event time ahead on it; when the two
    are stopped (SIGTERM) their partitions come back to it far behind what it holds."""
    frame, ref = handbook_60d
    feed(pipeline.settings, frame)
    first = pipeline.start_detector("--batch-size", "2000", name="w0")
    pipeline.wait_for_log(first, owns_partitions)
    time.sleep(3)
    extra = [pipeline.start_detector("--batch-size", "2000", name=f"w{i}") for i in (1, 2)]
    for proc in extra:
        pipeline.wait_for_log(proc, owns_partitions)
        pipeline.wait_for_log(proc, has_decided)
    for proc in extra:
        proc.terminate()  # SIGTERM: finish the batch, leave the group
    for proc in extra:
        assert proc.wait(60) == 0, "a worker did not stop cleanly on SIGTERM"
    assert first.poll() is None
    out = check_exactly_once(pipeline, expected_valid(frame))
    check_features(out, ref)
    check_dlq_holds_only_invalid(pipeline, frame)


def test_stalled_worker_partitions_move_to_a_worker_weeks_ahead(pipeline: Pipeline, handbook_60d) -> None:
    """A worker frozen (SIGSTOP, e.g. a VM pause) past the session timeout loses its partitions
    to the other worker, which meanwhile ran weeks of event time ahead on its own: it must
    decide them on the full 37-day terminal history (rebuilding it if it expired), then the
    frozen one wakes up fenced and must not publish anything twice."""
    frame, ref = handbook_60d
    feed(pipeline.settings, frame)
    a = pipeline.start_detector("--batch-size", "2000", name="a")
    b = pipeline.start_detector("--batch-size", "2000", name="b")
    for proc in (a, b):
        pipeline.wait_for_log(proc, owns_partitions)
        pipeline.wait_for_log(proc, has_decided)
    before = len(pipeline.events(a, owns_partitions))
    b.send_signal(signal.SIGSTOP)
    try:
        # After the session timeout (15 s) the group gives b's partitions to a.
        deadline = time.monotonic() + 90
        while len(pipeline.events(a, owns_partitions)) == before:
            assert time.monotonic() < deadline, "b's partitions never moved to a"
            time.sleep(0.5)
        time.sleep(3)
    finally:
        b.send_signal(signal.SIGCONT)
    out = check_exactly_once(pipeline, expected_valid(frame))
    check_features(out, ref)


def check_dlq_holds_only_invalid(p: Pipeline, frame) -> None:  # noqa: ANN001 - a DataFrame
    """Nothing valid was dead-lettered: the DLQ holds exactly the invalid rows (amount 0.00),
    each once, with a reason header."""
    invalid = frame.loc[(frame["tx_amount"] * 100).round().le(0), "transaction_id"].astype(str)
    dead = read_topic(p.settings, p.settings.topic_dlq, until=lambda m: len(m) >= len(invalid), timeout_s=60)
    ids = [json.loads(m.value())["transaction_id"] for m in dead]
    assert sorted(map(str, ids)) == sorted(invalid)
    assert all(dict(m.headers()).get("dlq.reason") for m in dead)


def test_broker_killed_and_restarted_mid_stream(pipeline: Pipeline, infra: Infra, handbook_60d) -> None:
    """kill -9 one of the 3 brokers while two workers stream, restart it 10 s later."""
    frame, ref = handbook_60d
    feed(pipeline.settings, frame)
    workers = [pipeline.start_detector("--batch-size", "2000", name=f"w{i}") for i in range(2)]
    for proc in workers:
        pipeline.wait_for_log(proc, has_decided)
    infra.cluster.kill_node(2)
    try:
        time.sleep(10)
        assert all(w.poll() is None for w in workers), "a worker died when a broker did"
    finally:
        infra.cluster.start_node(2)
        infra.cluster.wait_ready()
    out = check_exactly_once(pipeline, expected_valid(frame))
    check_features(out, ref)
    check_dlq_holds_only_invalid(pipeline, frame)


def _group_coordinator(pipeline: Pipeline, group: str) -> int:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(pipeline.settings.kafka_client_config())
    found = admin.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=60)
    return found.coordinator.id


def test_group_coordinator_down_past_the_broker_session(
    pipeline: Pipeline, infra: Infra, handbook_60d
) -> None:
    """kill -9 the broker coordinating the detectors' group and keep it down 20 s, past the
    brokers' session timeout, so it leaves the cluster metadata. librdkafka's
    send_offsets_to_transaction then waited for good on the coordinator it had cached (CI hung
    twice on it); the worker must give up on the call, replace its producer and go on."""
    frame, ref = handbook_60d
    feed(pipeline.settings, frame)
    worker = pipeline.start_detector("--batch-size", "2000", name="w")
    pipeline.wait_for_log(worker, has_decided)
    node = _group_coordinator(pipeline, "fraudstream-detector")
    infra.cluster.kill_node(node)
    try:
        time.sleep(20)
        assert worker.poll() is None, "the worker died with the group coordinator"
    finally:
        infra.cluster.start_node(node)
        infra.cluster.wait_ready()
    out = check_exactly_once(pipeline, expected_valid(frame))
    check_features(out, ref)
    assert worker.poll() is None


def test_postgres_restart_mid_stream_backs_off_and_resumes(
    pipeline: Pipeline, infra: Infra, handbook_60d
) -> None:
    """PostgreSQL stopped for ~8 s while a worker streams: it retries with backoff, then goes on."""
    frame, ref = handbook_60d
    feed(pipeline.settings, frame)
    worker = pipeline.start_detector("--batch-size", "2000", name="w")
    pipeline.wait_for_log(worker, has_decided)
    pg = LocalPostgres(infra.settings)
    pg.down()
    try:
        time.sleep(8)
        assert worker.poll() is None, "the worker died with PostgreSQL"
    finally:
        pg.up()
    pipeline.wait_for_log(worker, lambda e: e.get("event") == "postgres.write.retry")
    out = check_exactly_once(pipeline, expected_valid(frame))
    check_features(out, ref)
    assert worker.poll() is None
