"""Smoke test of ``fraudstream bench --quick``: every experiment runs and reports figures.

Only the shape of the results is checked (keys present, throughputs positive): the figures
themselves depend on the machine and are never asserted against a target.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fraudstream.bench.command import run_bench
from fraudstream.bench.runner import BenchConfig

from .conftest import Infra

pytestmark = pytest.mark.integration


def test_bench_quick_writes_results_and_plot(infra: Infra, tmp_path: Path) -> None:
    cfg = BenchConfig.quick()
    cfg.live_seconds = 5.0
    cfg.naive_seconds = 3.0
    run_bench(infra.settings, cfg, tmp_path, command="fraudstream bench --quick")

    results = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 0
    for key in (
        "date",
        "machine",
        "command",
        "config",
        "throughput",
        "naive",
        "live_throughput",
        "latency",
        "floor",
        "samples",
    ):
        assert key in results, key
    assert results["machine"]["nproc"] >= 1

    (tp,) = results["throughput"]
    assert tp["workers"] == 1
    # exactly once: every transaction decided or dead-lettered, none twice
    assert tp["decisions"] + tp["dead_letters"] == tp["preloaded"] == cfg.preload
    assert tp["exactly_once_count_ok"]
    assert tp["throughput_tx_s"] > 0
    assert tp["postgres_rows"] >= 0
    assert "detectors" in tp["resources"]

    assert results["naive"]["throughput_tx_s"] > 0
    assert results["naive"]["ratio_fraudstream_over_naive"] > 0
    assert results["live_throughput"]["throughput_tx_s"] > 0

    (lat,) = results["latency"]
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "kept_up", "decided_tx_s", "producer_achieved_tx_s"):
        assert key in lat, key
    assert 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"] <= lat["max_ms"]

    # Kafka alone in the detector's place: one message out per message in (invalid ones too)
    floor = results["floor"]
    assert floor["throughput"]["decisions"] == cfg.preload
    assert floor["throughput"]["exactly_once_count_ok"]
    assert floor["throughput"]["throughput_tx_s"] > 0
    (flat,) = floor["latency"]
    assert flat["decisions"] == flat["producer_sent"]
    assert 0 < flat["p50_ms"] <= flat["p99_ms"] <= flat["max_ms"]

    # The detectors ran as the deployment's least-privileged login, not as the schema owner.
    starts = [
        json.loads(line)
        for f in (tmp_path / "logs").glob("*-detect-*.log")
        for line in f.read_text().splitlines()
        if '"detector.start"' in line
    ]
    assert starts and all(s["least_privilege"] for s in starts)
