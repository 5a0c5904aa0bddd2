"""The evaluation's train/test split equals the handbook's ``get_train_test_set``.

The reference below is a transcription of the Fraud Detection Handbook, chapter 3
(``shared_functions.get_train_test_set``), on the handbook's column names.
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from fraudstream.learning.evaluate import Evaluation, handbook_split, per_scenario_recall


def get_train_test_set(transactions_df, start_date_training, delta_train=7, delta_delay=7, delta_test=7):  # noqa: ANN001, ANN201
    train_df = transactions_df[(start_date_training <= transactions_df.TX_DATETIME)
                               & (start_date_training
                                  + datetime.timedelta(days=delta_train) > transactions_df.TX_DATETIME)]
    test_df = []
    known_defrauded_customers = set(train_df[train_df.TX_FRAUD == 1].CUSTOMER_ID)
    start_tx_time_days_training = train_df.TX_TIME_DAYS.min()
    for day in range(delta_test):
        test_df_day = transactions_df[start_tx_time_days_training
                                      + delta_train + delta_delay + day == transactions_df.TX_TIME_DAYS]
        test_df_day_delay_period = transactions_df[start_tx_time_days_training
                                                   + delta_train + day - 1 == transactions_df.TX_TIME_DAYS]
        delay_frauds = test_df_day_delay_period[test_df_day_delay_period.TX_FRAUD == 1]
        new_defrauded_customers = set(delay_frauds.CUSTOMER_ID)
        known_defrauded_customers = known_defrauded_customers.union(new_defrauded_customers)
        test_df_day = test_df_day[~test_df_day.CUSTOMER_ID.isin(known_defrauded_customers)]
        test_df.append(test_df_day)
    test_df = pd.concat(test_df)
    train_df = train_df.sort_values("TRANSACTION_ID")
    test_df = test_df.sort_values("TRANSACTION_ID")
    return (train_df, test_df)


def synthetic(n: int = 60_000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2018-04-01")
    seconds = np.sort(rng.integers(0, 140 * 86400, n))
    times = start + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame({
        "TRANSACTION_ID": np.arange(n),
        "TX_DATETIME": times,
        "CUSTOMER_ID": rng.integers(0, 400, n),
        "TX_FRAUD": (rng.random(n) < 0.02).astype(int),
        "TX_TIME_DAYS": seconds // 86400,
    })


def test_split_equals_the_handbook_function() -> None:
    hb = synthetic()
    want_train, want_test = get_train_test_set(hb, datetime.datetime(2018, 7, 25))
    ours = pd.DataFrame({
        "transaction_id": hb["TRANSACTION_ID"].astype(str),
        "tx_datetime": hb["TX_DATETIME"].dt.tz_localize("UTC"),
        "customer_id": hb["CUSTOMER_ID"].astype(str),
        "is_fraud": hb["TX_FRAUD"].astype(bool),
    })
    train, test = handbook_split(ours)
    assert list(train["transaction_id"]) == list(want_train["TRANSACTION_ID"].astype(str))
    assert list(test["transaction_id"]) == list(want_test["TRANSACTION_ID"].astype(str))
    assert 0 < len(test) < (hb["TX_TIME_DAYS"].between(129, 135)).sum(), "some known cards were removed"


def test_per_scenario_recall_counts_each_scenario() -> None:
    test = pd.DataFrame({"transaction_id": ["a", "b", "c", "d"], "score": [0.9, 0.1, 0.6, 0.2]})
    truth = pd.DataFrame({"fraud_scenario": [1, 1, 2, 0]}, index=["a", "b", "c", "d"])
    rows = per_scenario_recall(test, np.array([0.7, 0.8, 0.1, 0.9]), truth, 0.5)
    assert rows == [
        {"scenario": 1, "frauds": 2, "model_recall": 1.0, "live_recall": 0.5},
        {"scenario": 2, "frauds": 1, "model_recall": 0.0, "live_recall": 1.0},
    ]


def test_goal_check() -> None:
    ev = Evaluation({"auc_roc": 0.9, "average_precision": 0.69, "card_precision@100": None}, [], {}, {})
    assert ev.beats_goal() == {"auc_roc": True, "average_precision": False, "card_precision@100": False}
