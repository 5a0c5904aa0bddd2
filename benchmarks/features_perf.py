"""Throughput and memory of the streaming feature state (opt-in: ``FRAUDSTREAM_BENCH=1``).

Why opt-in: the figures need a few GB of memory and a minute or two, and they depend on the
machine; the default test run checks exactness, this file measures. Run it with ``-s`` to see
the report, e.g. ``FRAUDSTREAM_BENCH=1 .venv/bin/pytest -s benchmarks/features_perf.py``.
Sizes can be changed with ``FRAUDSTREAM_BENCH_CUSTOMERS`` (default 1,000,000).

Workload: ``customers`` customers with about 10 transactions each per 30 days (uniform times,
uniform random customers and terminals), 100k-row batches. The state is first filled with 30
days of history (by replay), then ``update_and_compute`` + ``compute`` (and the reader's
``observe`` / ``observe_labels``) are timed over the next days, when windows are full and
expiry runs.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc

import numpy as np
import pytest

from fraudstream.contracts.batch import TxBatch
from fraudstream.features import CustomerState, TerminalState, compute_features

pytestmark = pytest.mark.skipif(
    os.environ.get("FRAUDSTREAM_BENCH") != "1", reason="benchmark: set FRAUDSTREAM_BENCH=1 to run"
)

DAY_MS = 86_400_000
BATCH = 100_000
START_MS = 1_700_000_000_000


class Workload:
    """Deterministic synthetic transactions, generated batch by batch."""

    def __init__(self, customers: int, terminals: int, tx_per_30_days: int = 10, seed: int = 7) -> None:
        self.customers = customers
        self.terminals = terminals
        self.rate_per_ms = customers * tx_per_30_days / (30 * DAY_MS)
        self.rng = np.random.default_rng(seed)
        self.next_id = 0
        self.clock = float(START_MS)

    def batch(self, size: int = BATCH) -> TxBatch:
        gaps = self.rng.exponential(1.0 / self.rate_per_ms, size)
        times = (self.clock + np.cumsum(gaps)).astype(np.int64)
        self.clock = float(times[-1])
        amounts = np.round(self.rng.uniform(1.0, 300.0, size), 2)
        ids = range(self.next_id, self.next_id + size)
        self.next_id += size
        return TxBatch(
            transaction_id=[f"tx-{i}" for i in ids],
            customer_id=[f"c{c}" for c in self.rng.integers(0, self.customers, size).tolist()],
            terminal_id=[f"t{t}" for t in self.rng.integers(0, self.terminals, size).tolist()],
            time_ms=times,
            tx_amount=amounts,
            amount_cents=np.rint(amounts * 100).astype(np.int64),
        )


def _n_customers() -> int:
    return int(os.environ.get("FRAUDSTREAM_BENCH_CUSTOMERS", "1000000"))


def test_throughput_100k_batches() -> None:
    customers = _n_customers()
    work = Workload(customers, terminals=max(1000, customers // 5))
    cust = CustomerState()
    term = TerminalState()
    history_batches = int(customers * 10 / BATCH)  # 30 days
    for _ in range(history_batches):
        b = work.batch()
        term.observe(b)
        cust.replay(b)
    steps = ["observe", "observe_labels", "seen", "update_and_compute", "compute"]
    wall = dict.fromkeys(steps, 0.0)
    cpu = dict.fromkeys(steps, 0.0)  # process CPU time: less sensitive to a busy machine
    rows = 0
    for _ in range(max(10, history_batches // 3)):  # about 10 more days
        b = work.batch()
        labelled = b.transaction_id[: BATCH // 100]  # labels for 1% of the batch
        calls = {
            "observe": lambda b=b: term.observe(b),
            "observe_labels": lambda ids=labelled: term.observe_labels(ids, np.ones(len(ids), dtype=bool)),
            "seen": lambda b=b: cust.seen(b.transaction_id),
            "update_and_compute": lambda b=b: cust.update_and_compute(b),
            "compute": lambda b=b: term.compute(b.terminal_id, b.time_ms),
        }
        results = {}
        for step in steps:
            w0, c0 = time.perf_counter(), time.process_time()
            results[step] = calls[step]()
            wall[step] += time.perf_counter() - w0
            cpu[step] += time.process_time() - c0
        assert not results["seen"].any()
        assert len(results["update_and_compute"]) + len(results["compute"]) == 20
        rows += len(b)
    b = work.batch()
    term.observe(b)
    assert len(compute_features(b, cust, term)) == 23
    print(f"\n{customers:,} customers, {rows:,} rows measured in {BATCH:,}-row batches (steady state)")
    print(f"  {'':22s} {'wall tx/s':>12s} {'CPU tx/s':>12s} {'CPU ms/batch':>13s}")
    for step in steps:
        per_batch = 1000 * cpu[step] * BATCH / rows
        print(f"  {step:22s} {rows / wall[step]:12,.0f} {rows / cpu[step]:12,.0f} {per_batch:13.1f}")
    for label, group in (
        ("update + compute", ["update_and_compute", "compute"]),
        ("seen + update + compute", ["seen", "update_and_compute", "compute"]),
    ):
        w = sum(wall[s] for s in group)
        c = sum(cpu[s] for s in group)
        print(f"  {label:22s} {rows / w:12,.0f} {rows / c:12,.0f} {1000 * c * BATCH / rows:13.1f}")
    print(
        f"  state: customer {cust.nbytes / 1e6:,.0f} MB"
        f" ({cust.n_events:,} events, {cust.n_customers:,} customers),"
        f" terminal {term.nbytes / 1e6:,.0f} MB ({term.n_transactions:,} transactions)"
    )


def test_memory_1m_customers() -> None:
    """State memory after 30 days of ~10 transactions per customer (traced allocations)."""
    customers = _n_customers()
    work = Workload(customers, terminals=max(1000, customers // 5))
    gc.collect()
    tracemalloc.start()
    try:
        cust = CustomerState()
        term = TerminalState()
        for _ in range(int(customers * 10 / BATCH)):
            b = work.batch()
            term.observe(b)
            cust.replay(b)
            del b
        gc.collect()
        total, peak = tracemalloc.get_traced_memory()
        del term
        gc.collect()
        customer_only, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f"\n{customers:,} customers, {cust.n_events:,} events in 30 days: "
        f"CustomerState {customer_only / 1e6:,.0f} MB traced ({cust.nbytes / 1e6:,.0f} MB numpy), "
        f"+ TerminalState {(total - customer_only) / 1e6:,.0f} MB; peak {peak / 1e6:,.0f} MB"
    )
    assert customer_only < 1.2 * cust.nbytes + 50e6  # nothing big outside the numpy arrays
