"""Decisions + delayed labels -> labelled feature store -> a trained, registered, promoted model,
picked up by the running detector without a restart, with exactly-once intact."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import psycopg
import pytest

from fraudstream.generator.command import to_contract_frame
from fraudstream.generator.handbook import generate_dataset

from .conftest import ROOT, Pipeline
from .streams import decisions, feed, read_topic

pytestmark = pytest.mark.integration


def test_model_trained_on_the_loop_is_hot_swapped_into_the_running_detector(pipeline: Pipeline) -> None:
    _, _, tx = generate_dataset(500, 1000, 60, "2018-04-01")
    frame = to_contract_frame(tx)
    frame = frame[frame["tx_amount"] >= 0.005]
    cut = pd.Timestamp("2018-05-16", tz="UTC")
    first, second = frame[frame["tx_datetime"] < cut], frame[frame["tx_datetime"] >= cut]
    feed(pipeline.settings, first)
    pipeline.start_detector()  # runs through the whole test
    out_topic = pipeline.settings.topic_output
    read_topic(pipeline.settings, out_topic, until=lambda o: len(o) >= len(first))

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "fraudstream.cli", *args], env=pipeline.env,
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    cli("collect", "--exit-when-idle", "5")
    with psycopg.connect(pipeline.settings.dsn) as conn:
        labelled = conn.execute(
            "SELECT count(*) FROM labelled_features WHERE is_fraud IS NOT NULL AND features IS NOT NULL"
        ).fetchone()
    assert labelled is not None and labelled[0] == len(first)  # labels 7 days later, all published

    cli("train", "--from", "2018-04-01", "--to", "2018-04-25",
        "--validate-from", "2018-04-26", "--validate-to", "2018-05-08")
    with psycopg.connect(pipeline.settings.dsn) as conn:
        rows = conn.execute("SELECT version, active, metrics FROM models").fetchall()
    assert len(rows) == 1
    version, active, metrics = rows[0]
    assert active, "the first model beats no model"
    assert metrics["auc_roc"] > 0.7 and metrics["n"] > 0 and "card_precision@100" in metrics

    time.sleep(5)  # the detector polls the registry every second
    feed(pipeline.settings, second)
    out = decisions(read_topic(pipeline.settings, out_topic, until=lambda o: len(o) >= len(frame)))
    counts = Counter(d["transaction_id"] for d in out)
    assert set(counts) == set(frame["transaction_id"]) and set(counts.values()) == {1}
    late = [d for d in out if d["tx_datetime"] >= "2018-05-16"]
    assert late and {d["model_version"] for d in late} == {str(version)}
    assert {d["model_version"] for d in out if d["tx_datetime"] < "2018-05-16"} == {None}
    assert any(r.startswith("model:") for d in late for r in d["reasons"])
