"""The customer's usual feature values, to set an alert's features against.

"Usual" is the median of each feature over the customer's other decisions in the 30 days of
event time before the alert. Every decision (approved ones too) is in the labelled feature
store when the collector runs; without it, only the customer's other suspicious rows are
known, which the response says (``source``) because that baseline is biased towards alerts.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import psycopg
from pydantic import BaseModel

MAX_ROWS = 300

_FROM_STORE = (
    "SELECT features FROM labelled_features WHERE customer_id = %s AND transaction_id <> %s"
    " AND features IS NOT NULL AND tx_datetime < %s AND tx_datetime >= %s - interval '30 days'"
    " ORDER BY tx_datetime DESC LIMIT %s"
)
_FROM_ALERTS = (
    "SELECT features FROM fraudulent_transactions WHERE customer_id = %s AND transaction_id <> %s"
    " AND tx_datetime < %s AND tx_datetime >= %s - interval '30 days'"
    " ORDER BY tx_datetime DESC LIMIT %s"
)


class Baseline(BaseModel):
    source: Literal["all_decisions", "suspicious_only", "none"]
    transactions: int
    median: dict[str, float]


def medians(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Per-feature median over rows (non-numeric values ignored)."""
    columns: dict[str, list[float]] = {}
    for features in rows:
        for name, value in features.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                columns.setdefault(name, []).append(float(value))
    return {name: statistics.median(values) for name, values in columns.items()}


def customer_baseline(
    conn: psycopg.Connection[Any], customer_id: str, transaction_id: str, before: datetime
) -> Baseline:
    args = (customer_id, transaction_id, before, before, MAX_ROWS)
    rows = [r[0] for r in conn.execute(_FROM_STORE, args).fetchall()]
    source: Literal["all_decisions", "suspicious_only", "none"] = "all_decisions"
    if not rows:
        rows = [r[0] for r in conn.execute(_FROM_ALERTS, args).fetchall()]
        source = "suspicious_only" if rows else "none"
    return Baseline(source=source, transactions=len(rows), median=medians(r or {} for r in rows))
