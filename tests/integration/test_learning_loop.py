"""Decisions + delayed labels -> labelled feature store -> a trained, registered, promoted model."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from fraudstream.generator.command import to_contract_frame
from fraudstream.generator.handbook import generate_dataset

from .conftest import ROOT, Pipeline
from .streams import feed, read_topic

pytestmark = pytest.mark.integration


def test_collect_then_train_registers_and_promotes_a_model(pipeline: Pipeline) -> None:
    _, _, tx = generate_dataset(500, 1000, 45, "2018-04-01")
    frame = to_contract_frame(tx)
    frame = frame[frame["tx_amount"] >= 0.005]
    feed(pipeline.settings, frame)
    pipeline.start_detector("--exit-when-idle", "5")
    read_topic(pipeline.settings, pipeline.settings.topic_output, until=lambda o: len(o) >= len(frame))

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "fraudstream.cli", *args], env=pipeline.env,
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    cli("collect", "--exit-when-idle", "5")
    with psycopg.connect(pipeline.settings.dsn) as conn:
        n, labelled = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_fraud IS NOT NULL AND features IS NOT NULL)"
            " FROM labelled_features").fetchone()  # type: ignore[misc]
    assert n == len(frame) and labelled == len(frame)  # every label was published (delay 7 d)

    cli("train", "--from", "2018-04-01", "--to", "2018-04-25",
        "--validate-from", "2018-04-26", "--validate-to", "2018-05-14")
    with psycopg.connect(pipeline.settings.dsn) as conn:
        rows = conn.execute("SELECT version, active, metrics FROM models").fetchall()
    assert len(rows) == 1
    version, active, metrics = rows[0]
    assert active, "the first model beats no model"
    assert metrics["auc_roc"] > 0.7 and metrics["n"] > 0 and "card_precision@100" in metrics
