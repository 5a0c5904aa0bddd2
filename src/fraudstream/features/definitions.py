"""The detector's feature vector: names, order, and assembly for a batch.

Why here: the model, the rules and the decision messages all address features by name, and the
model needs a fixed column order. The first 15 are the Fraud Detection Handbook's baseline
features (chapter 3, in the order its models use them); the rest are real-time features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from fraudstream.contracts.batch import TxBatch
from fraudstream.features.customer import (
    CUSTOMER_HANDBOOK_FEATURES,
    CUSTOMER_REALTIME_FEATURES,
    DAY_MS,
    HOUR_MS,
    CustomerState,
)
from fraudstream.features.terminal import (
    TERMINAL_HANDBOOK_FEATURES,
    TERMINAL_REALTIME_FEATURES,
    TerminalState,
)

__all__ = [
    "FEATURE_NAMES",
    "HANDBOOK_FEATURES",
    "INTEGER_FEATURES",
    "REALTIME_FEATURES",
    "compute_features",
    "feature_matrix",
    "time_features",
]

#: The handbook's 15 baseline features, in its order.
HANDBOOK_FEATURES: list[str] = [
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    *CUSTOMER_HANDBOOK_FEATURES,
    *TERMINAL_HANDBOOK_FEATURES,
]
#: Features beyond the handbook.
REALTIME_FEATURES: list[str] = [*CUSTOMER_REALTIME_FEATURES, *TERMINAL_REALTIME_FEATURES]
#: Every feature, in the model's column order.
FEATURE_NAMES: list[str] = [*HANDBOOK_FEATURES, *REALTIME_FEATURES]

#: Features that are counts or 0/1 flags: whole numbers by definition (``output`` writes them
#: as JSON integers).
INTEGER_FEATURES: frozenset[str] = frozenset(
    name for name in FEATURE_NAMES
    if "_NB_TX_" in name
    or name in ("TX_DURING_WEEKEND", "TX_DURING_NIGHT", "CUSTOMER_FIRST_TIME_AT_TERMINAL")
)

# 1970-01-01 was a Thursday (weekday 3, Monday = 0).
_EPOCH_WEEKDAY = 3


def time_features(time_ms: npt.ArrayLike) -> dict[str, npt.NDArray[np.float64]]:
    """``TX_DURING_WEEKEND`` (UTC Saturday or Sunday) and ``TX_DURING_NIGHT`` (UTC hour <= 6),
    as the handbook's ``is_weekend`` / ``is_night`` on naive UTC timestamps."""
    t = np.asarray(time_ms, dtype=np.int64)
    weekday = (t // DAY_MS + _EPOCH_WEEKDAY) % 7
    hour = (t // HOUR_MS) % 24
    return {
        "TX_DURING_WEEKEND": (weekday >= 5).astype(np.float64),
        "TX_DURING_NIGHT": (hour <= 6).astype(np.float64),
    }


def compute_features(
    batch: TxBatch, customer_state: CustomerState, terminal_state: TerminalState
) -> dict[str, npt.NDArray[np.float64]]:
    """All :data:`FEATURE_NAMES` for the rows of ``batch`` (float64 arrays, batch order).

    Updates ``customer_state`` with the batch (it must be the state of the batch's partition,
    and the batch must hold no duplicates, see :meth:`CustomerState.seen`). ``terminal_state``
    is only read: its reader must already have observed every transaction with time <= the
    batch's latest time and every label with ``labeled_at`` <= it.
    """
    values: dict[str, npt.NDArray[np.float64]] = {
        "TX_AMOUNT": np.asarray(batch.tx_amount, dtype=np.float64),
        **time_features(batch.time_ms),
        **customer_state.update_and_compute(batch),
        **terminal_state.compute(batch.terminal_id, batch.time_ms),
    }
    return {name: values[name] for name in FEATURE_NAMES}


def feature_matrix(
    features: Mapping[str, npt.NDArray[np.float64]], names: Sequence[str] = FEATURE_NAMES
) -> npt.NDArray[np.float64]:
    """``(n_rows, len(names))`` float64 matrix of the features, columns in ``names`` order."""
    if not names:
        n = len(next(iter(features.values()), ()))
        return np.zeros((n, 0), dtype=np.float64)
    return np.column_stack([np.asarray(features[name], dtype=np.float64) for name in names])
