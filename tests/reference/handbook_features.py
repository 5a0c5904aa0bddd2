"""Offline reference of every detector feature, computed with pandas, independently of
``fraudstream.features``.

The handbook part is a transcription of the Fraud Detection Handbook, chapter 3
(``Chapter_3_GettingStarted/BaselineFeatureTransformation.ipynb``): ``is_weekend``, ``is_night``,
``get_customer_spending_behaviour_features`` and ``get_count_risk_rolling_window`` (delay 7,
windows 1, 7, 30). The literal functions are kept below and can be run group by group
(``reference_features(..., literal=True)``, slow); the default path computes the same pandas
rolling windows with ``groupby(...).rolling(...)`` in one call per window, which is what makes
575k rows take seconds instead of minutes. A test checks that both paths agree.

Adaptations (none changes a value):

* ``sort_values("TX_DATETIME", kind="stable")``: the handbook's default quicksort leaves the
  order of equal times unspecified; the stable sort keeps stream (row) order, which is the
  order the streaming detector sees. With equal times, "including current" rolling windows
  count the earlier rows of the tie only.
* window strings ``"{n}D"``: pandas 3 deprecates the lower-case ``"d"`` the handbook uses.
* pandas 3's ``groupby(...).apply`` no longer passes the grouping column, so the literal path
  iterates the groups explicitly.

Real-time features (plain pandas, same "including current" convention):

* ``CUSTOMER_ID_NB_TX_10MIN_WINDOW`` / ``..._1HOUR_WINDOW`` and ``CUSTOMER_ID_SUM_AMOUNT_*``:
  rolling count and sum of ``TX_AMOUNT`` per customer over ``10min`` / ``1h``;
* ``CUSTOMER_SECONDS_SINCE_PREV_TX``: seconds since the customer's previous transaction in
  row order, -1 when there is none or it is 30 days old or more;
* ``AMOUNT_TO_CUSTOMER_AVG_30DAY``: ``TX_AMOUNT / CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW``
  (0 when that average is 0);
* ``CUSTOMER_FIRST_TIME_AT_TERMINAL``: 1 when the customer has no earlier transaction (row
  order) at the terminal less than 30 days before, else 0;
* ``TERMINAL_ID_NB_TX_10MIN_WINDOW``: the terminal's other transactions with time in
  ``[t - 10 min, t)`` (a closed 10-minute rolling count minus the rows tied at ``t``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "REFERENCE_FEATURE_NAMES",
    "get_count_risk_rolling_window",
    "get_customer_spending_behaviour_features",
    "is_night",
    "is_weekend",
    "reference_features",
]

#: Column order of :func:`reference_features` (kept here, not imported, so that a test can
#: check the detector's FEATURE_NAMES against an independent list).
REFERENCE_FEATURE_NAMES: list[str] = [
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_7DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_30DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
    "TERMINAL_ID_NB_TX_1DAY_WINDOW",
    "TERMINAL_ID_RISK_1DAY_WINDOW",
    "TERMINAL_ID_NB_TX_7DAY_WINDOW",
    "TERMINAL_ID_RISK_7DAY_WINDOW",
    "TERMINAL_ID_NB_TX_30DAY_WINDOW",
    "TERMINAL_ID_RISK_30DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_10MIN_WINDOW",
    "CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW",
    "CUSTOMER_ID_NB_TX_1HOUR_WINDOW",
    "CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW",
    "CUSTOMER_SECONDS_SINCE_PREV_TX",
    "AMOUNT_TO_CUSTOMER_AVG_30DAY",
    "CUSTOMER_FIRST_TIME_AT_TERMINAL",
    "TERMINAL_ID_NB_TX_10MIN_WINDOW",
]

_THIRTY_DAYS = pd.Timedelta(days=30)

# --------------------------------------------------------------------------------------------
# The handbook's functions (chapter 3), transcribed
# --------------------------------------------------------------------------------------------


def is_weekend(tx_datetime):
    # Transform date into weekday (0 is Monday, 6 is Sunday)
    weekday = tx_datetime.weekday()
    # Binary value: 0 if weekday, 1 if weekend
    is_weekend = weekday >= 5

    return int(is_weekend)


def is_night(tx_datetime):
    # Get the hour of the transaction
    tx_hour = tx_datetime.hour
    # Binary value: 1 if hour less than 6, and 0 otherwise
    is_night = tx_hour <= 6

    return int(is_night)


def get_customer_spending_behaviour_features(customer_transactions, windows_size_in_days=(1, 7, 30)):
    # Let us first order transactions chronologically
    customer_transactions = customer_transactions.sort_values("TX_DATETIME", kind="stable")

    # The transaction date and time is set as the index, which will allow the use of the rolling function
    customer_transactions.index = customer_transactions.TX_DATETIME

    # For each window size
    for window_size in windows_size_in_days:
        # Compute the sum of the transaction amounts and the number of transactions for the given window size
        SUM_AMOUNT_TX_WINDOW = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "D").sum()
        NB_TX_WINDOW = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "D").count()

        # Compute the average transaction amount for the given window size
        # NB_TX_WINDOW is always >0 since current transaction is always included
        AVG_AMOUNT_TX_WINDOW = SUM_AMOUNT_TX_WINDOW / NB_TX_WINDOW

        # Save feature values
        customer_transactions["CUSTOMER_ID_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(NB_TX_WINDOW)
        customer_transactions["CUSTOMER_ID_AVG_AMOUNT_" + str(window_size) + "DAY_WINDOW"] = list(
            AVG_AMOUNT_TX_WINDOW
        )

    # Reindex according to transaction IDs
    customer_transactions.index = customer_transactions.TRANSACTION_ID

    # And return the dataframe with the new features
    return customer_transactions


def get_count_risk_rolling_window(
    terminal_transactions, delay_period=7, windows_size_in_days=(1, 7, 30), feature="TERMINAL_ID"
):
    terminal_transactions = terminal_transactions.sort_values("TX_DATETIME", kind="stable")

    terminal_transactions.index = terminal_transactions.TX_DATETIME

    NB_FRAUD_DELAY = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "D").sum()
    NB_TX_DELAY = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "D").count()

    for window_size in windows_size_in_days:
        NB_FRAUD_DELAY_WINDOW = (
            terminal_transactions["TX_FRAUD"].rolling(str(delay_period + window_size) + "D").sum()
        )
        NB_TX_DELAY_WINDOW = (
            terminal_transactions["TX_FRAUD"].rolling(str(delay_period + window_size) + "D").count()
        )

        NB_FRAUD_WINDOW = NB_FRAUD_DELAY_WINDOW - NB_FRAUD_DELAY
        NB_TX_WINDOW = NB_TX_DELAY_WINDOW - NB_TX_DELAY

        RISK_WINDOW = NB_FRAUD_WINDOW / NB_TX_WINDOW

        terminal_transactions[feature + "_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(NB_TX_WINDOW)
        terminal_transactions[feature + "_RISK_" + str(window_size) + "DAY_WINDOW"] = list(RISK_WINDOW)

    terminal_transactions.index = terminal_transactions.TRANSACTION_ID

    # Replace NA values with 0 (all undefined risk scores where NB_TX_WINDOW is 0)
    terminal_transactions.fillna(0, inplace=True)

    return terminal_transactions


# --------------------------------------------------------------------------------------------
# Applying them
# --------------------------------------------------------------------------------------------


def _prepare(transactions: pd.DataFrame) -> pd.DataFrame:
    """The columns the features need, in row (stream) order, with a positional index."""
    df = transactions[
        ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD"]
    ]
    df = df.reset_index(drop=True)
    stamps = pd.to_datetime(df["TX_DATETIME"])
    if stamps.dt.tz is not None:  # the handbook's timestamps are naive UTC
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    df = df.assign(TX_DATETIME=stamps)
    if not df["TX_DATETIME"].is_monotonic_increasing:
        raise ValueError("the reference expects transactions in non-decreasing TX_DATETIME order")
    return df


def _handbook_literal(df: pd.DataFrame) -> pd.DataFrame:
    """The handbook's notebook steps, group by group (slow: for small data sets)."""
    df = df.copy()
    df["TX_DURING_WEEKEND"] = df.TX_DATETIME.apply(is_weekend)
    df["TX_DURING_NIGHT"] = df.TX_DATETIME.apply(is_night)
    parts = [
        get_customer_spending_behaviour_features(group, windows_size_in_days=[1, 7, 30])
        for _, group in df.groupby("CUSTOMER_ID")
    ]
    df = pd.concat(parts).sort_values("TX_DATETIME", kind="stable").reset_index(drop=True)
    parts = [
        get_count_risk_rolling_window(
            group, delay_period=7, windows_size_in_days=[1, 7, 30], feature="TERMINAL_ID"
        )
        for _, group in df.groupby("TERMINAL_ID")
    ]
    df = pd.concat(parts).sort_values("TX_DATETIME", kind="stable").reset_index(drop=True)
    return df.set_index("TRANSACTION_ID")


def _grouped_rolling(df: pd.DataFrame, key: str, column: str, window: str, how: str, **kw: str) -> np.ndarray:
    """``df.groupby(key).rolling(window, on="TX_DATETIME")[column].<how>()`` back in row order.

    The grouped result lists the groups in key order and, within a group, the rows in their
    original order, which is exactly a stable argsort of the key.
    """
    rolled = getattr(df.groupby(key).rolling(window, on="TX_DATETIME", **kw)[column], how)()
    order = np.argsort(df[key].to_numpy(), kind="stable")
    out = np.empty(len(df), dtype=np.float64)
    out[order] = rolled.to_numpy(dtype=np.float64)
    return out


def _handbook_vectorised(df: pd.DataFrame) -> pd.DataFrame:
    """The same definitions as :func:`_handbook_literal`, one pandas call per window."""
    out = pd.DataFrame(index=df.index)
    out["TRANSACTION_ID"] = df["TRANSACTION_ID"]
    out["TX_AMOUNT"] = df["TX_AMOUNT"]
    out["TX_DURING_WEEKEND"] = df.TX_DATETIME.apply(is_weekend)
    out["TX_DURING_NIGHT"] = df.TX_DATETIME.apply(is_night)
    for window_size in (1, 7, 30):
        window = f"{window_size}D"
        total = _grouped_rolling(df, "CUSTOMER_ID", "TX_AMOUNT", window, "sum")
        count = _grouped_rolling(df, "CUSTOMER_ID", "TX_AMOUNT", window, "count")
        out[f"CUSTOMER_ID_NB_TX_{window_size}DAY_WINDOW"] = count
        out[f"CUSTOMER_ID_AVG_AMOUNT_{window_size}DAY_WINDOW"] = total / count
    delay_period = 7
    fraud_delay = _grouped_rolling(df, "TERMINAL_ID", "TX_FRAUD", f"{delay_period}D", "sum")
    tx_delay = _grouped_rolling(df, "TERMINAL_ID", "TX_FRAUD", f"{delay_period}D", "count")
    for window_size in (1, 7, 30):
        window = f"{delay_period + window_size}D"
        nb_fraud = _grouped_rolling(df, "TERMINAL_ID", "TX_FRAUD", window, "sum") - fraud_delay
        nb_tx = _grouped_rolling(df, "TERMINAL_ID", "TX_FRAUD", window, "count") - tx_delay
        with np.errstate(invalid="ignore", divide="ignore"):
            risk = nb_fraud / nb_tx
        out[f"TERMINAL_ID_NB_TX_{window_size}DAY_WINDOW"] = nb_tx
        out[f"TERMINAL_ID_RISK_{window_size}DAY_WINDOW"] = np.nan_to_num(risk, nan=0.0)
    return out.set_index("TRANSACTION_ID")


def _realtime(df: pd.DataFrame, avg_30: np.ndarray) -> pd.DataFrame:
    """The real-time features (see the module docstring), in row order."""
    out = pd.DataFrame(index=df.index)
    out["TRANSACTION_ID"] = df["TRANSACTION_ID"]
    for window, label in (("10min", "10MIN"), ("1h", "1HOUR")):
        out[f"CUSTOMER_ID_NB_TX_{label}_WINDOW"] = _grouped_rolling(
            df, "CUSTOMER_ID", "TX_AMOUNT", window, "count"
        )
        out[f"CUSTOMER_ID_SUM_AMOUNT_{label}_WINDOW"] = _grouped_rolling(
            df, "CUSTOMER_ID", "TX_AMOUNT", window, "sum"
        )

    gap = df.groupby("CUSTOMER_ID")["TX_DATETIME"].diff()
    recent = gap.notna() & (gap < _THIRTY_DAYS)
    out["CUSTOMER_SECONDS_SINCE_PREV_TX"] = np.where(recent, gap.dt.total_seconds(), -1.0)

    amount = df["TX_AMOUNT"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["AMOUNT_TO_CUSTOMER_AVG_30DAY"] = np.where(avg_30 > 0, amount / avg_30, 0.0)

    pair_gap = df.groupby(["CUSTOMER_ID", "TERMINAL_ID"])["TX_DATETIME"].diff()
    seen = pair_gap.notna() & (pair_gap < _THIRTY_DAYS)
    out["CUSTOMER_FIRST_TIME_AT_TERMINAL"] = np.where(seen, 0.0, 1.0)

    closed = _grouped_rolling(df, "TERMINAL_ID", "TX_AMOUNT", "10min", "count", closed="both")
    tied_so_far = df.groupby(["TERMINAL_ID", "TX_DATETIME"]).cumcount().to_numpy() + 1
    out["TERMINAL_ID_NB_TX_10MIN_WINDOW"] = closed - tied_so_far
    return out.set_index("TRANSACTION_ID")


def reference_features(transactions: pd.DataFrame, *, literal: bool = False) -> pd.DataFrame:
    """Every detector feature of every transaction, computed offline.

    Args:
        transactions: handbook-style frame with ``TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID,
            TERMINAL_ID, TX_AMOUNT, TX_FRAUD``, in stream order (non-decreasing
            ``TX_DATETIME``; rows with equal times in the order they are streamed), e.g. the
            transactions of :func:`fraudstream.generator.handbook.generate_dataset`.
            ``TX_DATETIME`` may be naive (read as UTC) or tz-aware.
        literal: run the handbook's functions group by group (slow) instead of the equivalent
            grouped rolling windows.

    Returns:
        float64 columns :data:`REFERENCE_FEATURE_NAMES`, indexed by ``TRANSACTION_ID`` (as
        given), rows in the input order.
    """
    df = _prepare(transactions)
    handbook = _handbook_literal(df) if literal else _handbook_vectorised(df)
    handbook = handbook.reindex(df["TRANSACTION_ID"])
    avg_30 = handbook["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"].to_numpy(dtype=np.float64)
    realtime = _realtime(df, avg_30)
    result = pd.concat([handbook, realtime], axis=1)
    return result[REFERENCE_FEATURE_NAMES].astype(np.float64)
