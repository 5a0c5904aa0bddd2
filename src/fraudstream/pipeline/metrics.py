"""Prometheus metrics of a detector worker (served on ``/metrics`` by the worker)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TRANSACTIONS = Counter("fraudstream_transactions_processed_total", "Valid transactions decided")
DECISIONS = Counter("fraudstream_decisions_total", "Decisions published", ["decision"])
DLQ = Counter("fraudstream_dlq_total", "Messages sent to the dead-letter queue", ["reason"])
SUSPICIOUS_ROWS = Counter("fraudstream_suspicious_rows_total", "Rows inserted into PostgreSQL")
BATCH_SECONDS = Histogram(
    "fraudstream_batch_seconds", "Wall time to process and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "fraudstream_batch_messages", "Messages per batch", buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000)
)
LAG = Gauge("fraudstream_consumer_lag_messages", "Messages behind the end of input", ["partition"])
RESTORE_SECONDS = Histogram("fraudstream_restore_seconds", "State restore time per partition")
RETRIES = Counter("fraudstream_retries_total", "Retried operations", ["target"])
ABORTS = Counter("fraudstream_transaction_aborts_total", "Kafka transactions aborted and retried")
ASSIGNED = Gauge("fraudstream_assigned_partitions", "Input partitions owned by this worker")
