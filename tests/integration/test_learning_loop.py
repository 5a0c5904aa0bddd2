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


def test_trainer_retrains_on_schedule_and_compares_on_the_same_days(pipeline: Pipeline) -> None:
    _, _, tx = generate_dataset(500, 1000, 45, "2018-04-01")
    frame = to_contract_frame(tx)
    frame = frame[frame["tx_amount"] >= 0.005]
    feed(pipeline.settings, frame)
    pipeline.start_detector()
    read_topic(pipeline.settings, pipeline.settings.topic_output, until=lambda o: len(o) >= len(frame))

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "fraudstream.cli", *args], env=pipeline.env,
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def models() -> list[tuple]:
        with psycopg.connect(pipeline.settings.dsn) as conn:
            return conn.execute(
                "SELECT version, active, metrics, trained_from, trained_to FROM models ORDER BY version"
            ).fetchall()

    cli("trainer", "--once", "--every-days", "7", "--train-days", "14", "--validate-days", "7")
    (version, active, metrics, t_from, t_to), = models()
    assert active, "the first model beats no model"
    # Labels run to 2018-05-15 (the last label is published at the end of the replay): the
    # windows end at the last complete day, validation the 7 days before it.
    assert metrics["validated_to"].startswith("2018-05-15")
    assert metrics["validated_from"].startswith("2018-05-08")
    assert (t_to - t_from).days == 14 and metrics["labels_total"] == len(frame)
    assert metrics["auc_roc"] > 0.7

    out = cli("trainer", "--once", "--every-days", "7")
    assert "not due" in out and len(models()) == 1, "no new labelled days: no new model"

    cli("train", "--from", "2018-04-10", "--to", "2018-04-20", "--validate-from", "2018-05-08",
        "--validate-to", "2018-05-14")
    rows = models()
    assert len(rows) == 2
    _, active2, metrics2, _, _ = rows[1]
    same = metrics2["active_on_same_window"]
    assert metrics2["active_version"] == str(version) and same["n"] == metrics2["n"]
    assert active2 == (metrics2["card_precision@100"] > same["card_precision@100"])
