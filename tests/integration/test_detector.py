"""The detector against the real cluster and PostgreSQL: exact features, exactly-once, DLQ.

The handbook dataset's first 60 days (5000 customers, 10000 terminals) is replayed with its
labels 7 days later; every decision's features must equal an independent offline pandas
computation of the handbook definitions (tests/reference), with 1 worker and with 3.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import numpy as np
import pandas as pd
import psycopg
import pytest

from fraudstream.features.definitions import FEATURE_NAMES

from .conftest import Pipeline
from .streams import decisions, feed, read_topic

pytestmark = pytest.mark.integration


def expected_valid(frame: pd.DataFrame) -> set[str]:
    return set(frame.loc[np.rint(frame["tx_amount"] * 100) > 0, "transaction_id"].astype(str))


def check_exactly_once(p: Pipeline, valid: set[str], timeout_s: float = 600) -> list[dict]:
    msgs = read_topic(p.settings, p.settings.topic_output,
                      until=lambda out: len(out) >= len(valid), timeout_s=timeout_s)
    out = decisions(msgs)
    counts = Counter(d["transaction_id"] for d in out)
    assert set(counts) == valid, "a valid transaction has no decision (or an unknown one appeared)"
    dupes = [k for k, c in counts.items() if c != 1]
    assert not dupes, f"{len(dupes)} transactions decided more than once, e.g. {dupes[:5]}"
    suspicious = {d["transaction_id"] for d in out if d["decision"] != "approve"}
    with psycopg.connect(p.settings.dsn) as conn:
        rows = conn.execute("SELECT transaction_id FROM fraudulent_transactions").fetchall()
    assert len(rows) == len({r[0] for r in rows})
    assert {r[0] for r in rows} == suspicious
    return out


def check_features(out: list[dict], ref: pd.DataFrame) -> None:
    got = pd.DataFrame([d["features"] for d in out], index=[d["transaction_id"] for d in out])
    got = got.loc[ref.index, FEATURE_NAMES]
    diff = (got - ref[FEATURE_NAMES]).abs()
    bad = diff.max()
    assert (bad <= 1e-6).all(), f"features differ from the offline computation:\n{bad[bad > 1e-6]}"


def test_one_worker_features_equal_offline_computation(pipeline: Pipeline, handbook_60d) -> None:
    frame, ref = handbook_60d
    feed(pipeline.settings, frame)
    pipeline.start_detector("--batch-size", "5000")
    out = check_exactly_once(pipeline, expected_valid(frame))
    check_features(out, ref)
    assert all(d["rules_version"] for d in out)


def test_three_workers_features_equal_offline_computation(pipeline: Pipeline, handbook_60d) -> None:
    frame, ref = handbook_60d
    feed(pipeline.settings, frame)
    for i in range(3):
        pipeline.start_detector("--batch-size", "2000", name=f"w{i}")
    out = check_exactly_once(pipeline, expected_valid(frame))
    check_features(out, ref)


def test_input_arriving_after_the_detector_caught_up_keeps_features_exact(
    pipeline: Pipeline, handbook_60d
) -> None:
    """Live traffic: the detector idles at the end of the log, then more input arrives. The
    global reader has seen the end of every partition by then and must keep reading anyway
    (it once stopped there, and terminal features were computed from a stale table)."""
    frame, ref = handbook_60d
    valid = expected_valid(frame)
    pipeline.start_detector("--batch-size", "5000")
    sent: set[str] = set()
    for idx in np.array_split(np.arange(len(frame)), 4):
        part = frame.iloc[idx]
        feed(pipeline.settings, part)
        sent |= valid & set(part["transaction_id"].astype(str))
        n_sent = len(sent)
        read_topic(pipeline.settings, pipeline.settings.topic_output,
                   until=lambda out, n=n_sent: len(out) >= n, timeout_s=300)
    out = check_exactly_once(pipeline, valid)
    check_features(out, ref)


def test_kill_minus_9_mid_stream_keeps_exactly_once_and_features(pipeline: Pipeline, handbook_60d) -> None:
    frame, ref = handbook_60d
    feed(pipeline.settings, frame)
    rng = random.Random(7)
    workers = [pipeline.start_detector("--batch-size", "1000", name=f"w{i}") for i in range(2)]
    for _ in range(5):
        time.sleep(rng.uniform(3, 8))
        victim = workers.pop(rng.randrange(len(workers)))
        victim.kill()  # SIGKILL: no chance to commit or clean up
        victim.wait(10)
        workers.append(pipeline.start_detector("--batch-size", "1000", name="restart"))
    out = check_exactly_once(pipeline, expected_valid(frame))
    check_features(out, ref)
