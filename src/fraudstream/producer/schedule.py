"""Event-time ordering of transactions and their delayed labels (the replay schedule)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Step:
    """A slice of the schedule: rows of the frame to send as transactions and as labels."""

    tx_rows: np.ndarray
    label_rows: np.ndarray


def replay_schedule(
    frame: pd.DataFrame, label_delay: timedelta | None, chunk: int = 20_000
) -> list[Step]:
    """Merge transactions (at ``tx_datetime``) and labels (at ``tx_datetime + delay``).

    The frame must already be in event-time order. Ties put a label before a transaction,
    so a label stamped ``t`` is on ``training`` no later than the transactions at ``t``.
    """
    n = len(frame)
    tx_t = frame["tx_datetime"].astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    if label_delay is None:
        return [Step(np.arange(s, min(s + chunk, n)), np.empty(0, np.int64)) for s in range(0, n, chunk)]
    lab_t = tx_t + int(label_delay.total_seconds() * 1e9)
    times = np.concatenate([lab_t, tx_t])
    kinds = np.concatenate([np.zeros(n, np.int8), np.ones(n, np.int8)])  # 0 label, 1 tx
    rows = np.concatenate([np.arange(n), np.arange(n)])
    order = np.lexsort((kinds, times))
    steps = []
    for s in range(0, 2 * n, chunk):
        sl = order[s : s + chunk]
        k = kinds[sl]
        steps.append(Step(tx_rows=rows[sl[k == 1]], label_rows=rows[sl[k == 0]]))
    return steps
