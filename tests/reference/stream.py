"""Drive the streaming feature code over a handbook data set the way the detector does.

Why: the offline reference (:mod:`tests.reference.handbook_features`) sees the whole data set at
once; the detector sees it as batches per input partition, with a separate reader feeding the
global terminal state with every transaction and every label. :func:`stream_features` simulates
that, respecting the detector's guarantee: before the features of a batch whose latest time is
``T`` are computed, the reader has observed every transaction with time ``<= T`` and every label
with ``labeled_at <= T`` (optionally more: ``reader_lead_ms``).
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import cycle

import numpy as np
import pandas as pd

from fraudstream.contracts.batch import TxBatch
from fraudstream.features import FEATURE_NAMES, CustomerState, TerminalState, compute_features
from fraudstream.generator.command import to_contract_frame

__all__ = ["Labels", "handbook_labels", "partition_of", "stream_features", "tx_batch_from_transactions"]

DAY_MS = 86_400_000


def tx_batch_from_transactions(transactions: pd.DataFrame) -> TxBatch:
    """All the rows of a handbook transactions frame as one :class:`TxBatch` (row order kept),
    through the message-contract mapping the producer uses."""
    contract = to_contract_frame(transactions)
    stamps = contract["tx_datetime"].dt.tz_convert("UTC").dt.tz_localize(None)
    time_ms = stamps.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    amounts = contract["tx_amount"].to_numpy(dtype=np.float64)
    return TxBatch(
        transaction_id=contract["transaction_id"].tolist(),
        customer_id=contract["customer_id"].tolist(),
        terminal_id=contract["terminal_id"].tolist(),
        time_ms=time_ms,
        tx_amount=amounts,
        amount_cents=np.rint(amounts * 100).astype(np.int64),
    )


@dataclass
class Labels:
    """Labels in ``labeled_at`` order."""

    transaction_id: list[str]
    is_fraud: np.ndarray  # bool
    labeled_at_ms: np.ndarray  # int64, non-decreasing


def handbook_labels(batch: TxBatch, is_fraud: np.ndarray, delay_ms: int = 7 * DAY_MS) -> Labels:
    """One label per transaction, published ``delay_ms`` after it."""
    labeled_at = np.asarray(batch.time_ms, dtype=np.int64) + delay_ms
    order = np.argsort(labeled_at, kind="stable")
    return Labels(
        transaction_id=[batch.transaction_id[i] for i in order.tolist()],
        is_fraud=np.asarray(is_fraud, dtype=bool)[order],
        labeled_at_ms=labeled_at[order],
    )


def partition_of(customer_ids: Sequence[str], n_partitions: int) -> np.ndarray:
    """A deterministic customer -> partition assignment (CRC-32 of the id)."""
    return np.fromiter(
        (zlib.crc32(c.encode()) % n_partitions for c in customer_ids), dtype=np.int64, count=len(customer_ids)
    )


def stream_features(
    batch: TxBatch,
    labels: Labels,
    *,
    batch_sizes: Sequence[int] = (1000,),
    n_partitions: int = 1,
    reader_lead_ms: int = 0,
    reader_chunk: int = 5000,
) -> pd.DataFrame:
    """Features of every row of ``batch`` (a whole stream in non-decreasing time order),
    computed in streaming.

    Args:
        batch: every transaction, in stream order.
        labels: every label, in ``labeled_at`` order.
        batch_sizes: sizes of the consecutive worker batches of each partition (cycled).
        n_partitions: input partitions (customers assigned by :func:`partition_of`), each with
            its own :class:`CustomerState`; one :class:`TerminalState` is shared.
        reader_lead_ms: how far beyond a batch's latest time the reader has read.
        reader_chunk: the reader observes the stream in chunks of at most this many rows.

    Returns:
        ``FEATURE_NAMES`` columns indexed by ``transaction_id``, rows in stream order.
    """
    n = len(batch)
    times = np.asarray(batch.time_ms, dtype=np.int64)
    part = partition_of(batch.customer_id, n_partitions) if n_partitions > 1 else np.zeros(n, dtype=np.int64)
    queues: list[list[np.ndarray]] = []
    for p in range(n_partitions):
        rows = np.flatnonzero(part == p)
        chunks: list[np.ndarray] = []
        start = 0
        for size in cycle(batch_sizes):
            if start >= len(rows):
                break
            chunks.append(rows[start : start + size])
            start += size
        queues.append(chunks[::-1])  # pop() from the end

    # The reader runs ahead of a batch's first row by the batch's time span (plus the lead);
    # the states must keep that much beyond their windows (1 day by default). Real batches
    # span seconds; test batches of 1000 handbook rows span days, "everything" spans months.
    span = max((int(times[c].max() - times[c].min()) for q in queues for c in q), default=0)
    margin = max(DAY_MS, span + reader_lead_ms + DAY_MS)
    customers = [CustomerState(late_margin_ms=margin) for _ in range(n_partitions)]
    terminals = TerminalState(late_margin_ms=margin)
    out = np.full((n, len(FEATURE_NAMES)), np.nan)
    read = 0
    labelled = 0
    heap = [(int(times[q[-1][0]]), p) for p, q in enumerate(queues) if q]
    heapq.heapify(heap)
    while heap:
        _, p = heapq.heappop(heap)
        rows = queues[p].pop()
        if queues[p]:
            heapq.heappush(heap, (int(times[queues[p][-1][0]]), p))
        horizon = int(times[rows].max()) + reader_lead_ms
        # Reader: transactions up to the horizon, then labels up to it (in labeled_at order).
        upto = int(np.searchsorted(times, horizon, side="right"))
        while read < upto:
            stop = min(upto, read + reader_chunk)
            terminals.observe(batch.take(np.arange(read, stop)))
            read = stop
        lab_upto = int(np.searchsorted(labels.labeled_at_ms, horizon, side="right"))
        if lab_upto > labelled:
            terminals.observe_labels(
                labels.transaction_id[labelled:lab_upto], labels.is_fraud[labelled:lab_upto]
            )
            labelled = lab_upto
        values = compute_features(batch.take(rows), customers[p], terminals)
        out[rows] = np.column_stack([values[name] for name in FEATURE_NAMES])
    index = pd.Index(batch.transaction_id, name="TRANSACTION_ID")
    return pd.DataFrame(out, index=index, columns=FEATURE_NAMES)
