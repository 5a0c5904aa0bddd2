"""The handbook metrics against a transcription of the handbook's own functions, on random data."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from fraudstream.learning.metrics import (
    assessment_metrics,
    card_precision_top_k,
    card_precision_top_k_day,
    day_index,
    performance_assessment,
)

# --------------------------------------------------------------------------------------------
# The Fraud Detection Handbook's shared functions (Chapter_References/shared_functions,
# "Performance assessment": card_precision_top_k_day, card_precision_top_k,
# performance_assessment), transcribed as published, as the test oracle. Only the mutable
# default ``top_k_list=[100]`` is a tuple here (ruff B006) and ruff re-wrapped long lines.
# --------------------------------------------------------------------------------------------


def handbook_card_precision_top_k_day(df_day, top_k):
    # This takes the max of the predictions AND the max of label TX_FRAUD for each CUSTOMER_ID,
    # and sorts by decreasing order of fraudulent prediction
    df_day = (
        df_day.groupby("CUSTOMER_ID")
        .max()
        .sort_values(by="predictions", ascending=False)
        .reset_index(drop=False)
    )

    # Get the top k most suspicious cards
    df_day_top_k = df_day.head(top_k)
    list_detected_compromised_cards = list(df_day_top_k[df_day_top_k.TX_FRAUD == 1].CUSTOMER_ID)

    # Compute precision top k
    card_precision_top_k = len(list_detected_compromised_cards) / top_k

    return list_detected_compromised_cards, card_precision_top_k


def handbook_card_precision_top_k(predictions_df, top_k, remove_detected_compromised_cards=True):
    # Sort days by increasing order
    list_days = list(predictions_df["TX_TIME_DAYS"].unique())
    list_days.sort()

    # At first, the list of detected compromised cards is empty
    list_detected_compromised_cards = []

    card_precision_top_k_per_day_list = []
    nb_compromised_cards_per_day = []

    # For each day, compute precision top k
    for day in list_days:
        df_day = predictions_df[predictions_df["TX_TIME_DAYS"] == day]
        df_day = df_day[["predictions", "CUSTOMER_ID", "TX_FRAUD"]]

        # Let us remove detected compromised cards from the set of daily transactions
        df_day = df_day[df_day.CUSTOMER_ID.isin(list_detected_compromised_cards) == False]  # noqa: E712

        nb_compromised_cards_per_day.append(len(df_day[df_day.TX_FRAUD == 1].CUSTOMER_ID.unique()))

        detected_compromised_cards, card_precision_top_k = handbook_card_precision_top_k_day(df_day, top_k)

        card_precision_top_k_per_day_list.append(card_precision_top_k)

        # Let us update the list of detected compromised cards
        if remove_detected_compromised_cards:
            list_detected_compromised_cards.extend(detected_compromised_cards)

    # Compute the mean
    mean_card_precision_top_k = np.array(card_precision_top_k_per_day_list).mean()

    # Returns precision top k per day as a list, and resulting mean
    return nb_compromised_cards_per_day, card_precision_top_k_per_day_list, mean_card_precision_top_k


def handbook_performance_assessment(
    predictions_df,
    output_feature="TX_FRAUD",
    prediction_feature="predictions",
    top_k_list=(100,),
    rounded=True,
):
    AUC_ROC = metrics.roc_auc_score(predictions_df[output_feature], predictions_df[prediction_feature])
    AP = metrics.average_precision_score(predictions_df[output_feature], predictions_df[prediction_feature])

    performances = pd.DataFrame([[AUC_ROC, AP]], columns=["AUC ROC", "Average precision"])

    for top_k in top_k_list:
        _, _, mean_card_precision_top_k = handbook_card_precision_top_k(predictions_df, top_k)
        performances["Card Precision@" + str(top_k)] = mean_card_precision_top_k

    if rounded:
        performances = performances.round(3)

    return performances


# --------------------------------------------------------------------------------------------


def random_predictions(seed: int, n: int = 4000, days: int = 10, customers: int = 300, ties: bool = False):
    """Handbook-shaped predictions: compromised cards stay compromised over several days, and
    their scores are higher on average, so that CP@k is neither 0 nor 1 and removal matters."""
    rng = np.random.default_rng(seed)
    customer = rng.integers(0, customers, n)
    day = rng.integers(0, days, n)
    compromised_from = np.where(rng.random(customers) < 0.15, rng.integers(0, days, customers), days + 1)
    fraud = (day >= compromised_from[customer]) & (rng.random(n) < 0.6)
    score = np.clip(rng.normal(0.3 + 0.4 * fraud, 0.2), 0, 1)
    if ties:
        score = np.round(score, 1)  # many equal scores: the sort order must match the handbook's
    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(n),
            "TX_TIME_DAYS": day,
            "CUSTOMER_ID": customer.astype(str) if seed % 2 else customer,
            "TX_FRAUD": fraud.astype(np.int64),
            "predictions": score,
        }
    )
    return frame.sort_values(["TX_TIME_DAYS", "TRANSACTION_ID"]).reset_index(drop=True)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("top_k", [1, 10, 50, 400])
@pytest.mark.parametrize("remove", [True, False])
@pytest.mark.parametrize("ties", [False, True])
def test_card_precision_top_k_matches_handbook(seed: int, top_k: int, remove: bool, ties: bool) -> None:
    df = random_predictions(seed, ties=ties)
    expected = handbook_card_precision_top_k(df, top_k, remove_detected_compromised_cards=remove)
    got = card_precision_top_k(df, top_k, remove_detected_compromised_cards=remove)
    assert got.nb_compromised_cards_per_day == expected[0]
    assert got.card_precision_top_k_per_day == expected[1]
    assert got.mean_card_precision_top_k == expected[2]
    assert 0 < got.mean_card_precision_top_k <= 1


def test_removal_changes_the_result_and_defaults_match_handbook() -> None:
    df = random_predictions(3)
    with_removal = card_precision_top_k(df, 20)
    without = card_precision_top_k(df, 20, remove_detected_compromised_cards=False)
    assert with_removal.mean_card_precision_top_k < without.mean_card_precision_top_k
    assert tuple(with_removal) == handbook_card_precision_top_k(df, 20)
    nb, per_day, mean = with_removal  # unpacks like the handbook's tuple
    assert len(nb) == len(per_day) == 10 and mean == pytest.approx(np.mean(per_day))


@pytest.mark.parametrize("seed", range(4))
def test_card_precision_top_k_day_matches_handbook(seed: int) -> None:
    df = random_predictions(seed, ties=True)
    day = df[df.TX_TIME_DAYS == 2][["predictions", "CUSTOMER_ID", "TX_FRAUD"]]
    assert card_precision_top_k_day(day, 25) == handbook_card_precision_top_k_day(day, 25)


def test_card_precision_hand_computed() -> None:
    # Day 0: cards a (fraud, 0.9), b (genuine, 0.8), c (fraud, max 0.7 of 0.7 and 0.1).
    # Day 1: a again (detected on day 0, removed), d (fraud 0.6), e (genuine 0.5).
    df = pd.DataFrame(
        {
            "TX_TIME_DAYS": [0, 0, 0, 0, 1, 1, 1],
            "CUSTOMER_ID": ["a", "b", "c", "c", "a", "d", "e"],
            "TX_FRAUD": [1, 0, 0, 1, 1, 1, 0],
            "predictions": [0.9, 0.8, 0.7, 0.1, 0.99, 0.6, 0.5],
        }
    )
    result = card_precision_top_k(df, 2)
    assert result.nb_compromised_cards_per_day == [2, 1]
    assert result.card_precision_top_k_per_day == [0.5, 0.5]  # day 0: a of {a, b}; day 1: d of {d, e}
    kept = card_precision_top_k(df, 2, remove_detected_compromised_cards=False)
    assert kept.card_precision_top_k_per_day == [0.5, 1.0]  # day 1: a and d of {a, d}
    assert kept.nb_compromised_cards_per_day == [2, 2]
    # k larger than the cards of a day: still divided by k.
    assert card_precision_top_k(df, 10).card_precision_top_k_per_day == [0.2, 0.1]


def test_card_precision_custom_columns_and_empty() -> None:
    df = random_predictions(1).rename(
        columns={
            "TX_TIME_DAYS": "day",
            "CUSTOMER_ID": "customer_id",
            "TX_FRAUD": "is_fraud",
            "predictions": "p",
        }
    )
    got = card_precision_top_k(
        df, 30, day_col="day", customer_col="customer_id", label_col="is_fraud", prediction_col="p"
    )
    assert got == card_precision_top_k(random_predictions(1), 30)
    empty = card_precision_top_k(random_predictions(1).iloc[:0], 30)
    assert empty.card_precision_top_k_per_day == [] and math.isnan(empty.mean_card_precision_top_k)
    with pytest.raises(ValueError):
        card_precision_top_k(df, 0, day_col="day")


@pytest.mark.parametrize("rounded", [True, False])
def test_performance_assessment_matches_handbook(rounded: bool) -> None:
    df = random_predictions(4)
    expected = handbook_performance_assessment(df, top_k_list=(10, 100), rounded=rounded)
    got = performance_assessment(df, top_k_list=(10, 100), rounded=rounded)
    pd.testing.assert_frame_equal(got, expected)
    assert list(got.columns) == ["AUC ROC", "Average precision", "Card Precision@10", "Card Precision@100"]


def test_assessment_metrics_is_unrounded_and_json_ready() -> None:
    df = random_predictions(5)
    out = assessment_metrics(
        df.TX_FRAUD, df.predictions, df.CUSTOMER_ID, df.TX_TIME_DAYS, top_k_list=(10, 100)
    )
    table = performance_assessment(df, top_k_list=(10, 100), rounded=False)
    assert out["auc_roc"] == table["AUC ROC"][0]
    assert out["average_precision"] == table["Average precision"][0]
    assert out["card_precision@10"] == table["Card Precision@10"][0]
    assert out["card_precision@100"] == table["Card Precision@100"][0]
    assert out["n"] == len(df) and out["n_fraud"] == int(df.TX_FRAUD.sum())
    assert all(type(v) in (float, int) for v in out.values())

    one_class = assessment_metrics(np.zeros(5), np.linspace(0, 1, 5), list("abcde"), np.zeros(5, dtype=int))
    assert one_class["auc_roc"] is None and one_class["average_precision"] is None
    assert one_class["card_precision@100"] == 0.0


def test_assessment_metrics_accepts_timestamps() -> None:
    df = random_predictions(2)
    start = pd.Timestamp("2018-04-01", tz="UTC")
    stamps = start + pd.to_timedelta(df.TX_TIME_DAYS, unit="D") + pd.Timedelta(hours=13)
    by_day = assessment_metrics(df.TX_FRAUD, df.predictions, df.CUSTOMER_ID, df.TX_TIME_DAYS)
    by_time = assessment_metrics(df.TX_FRAUD, df.predictions, df.CUSTOMER_ID, stamps)
    assert by_day == by_time


def test_day_index_uses_utc_midnights() -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    days = day_index(
        [
            dt.datetime(2018, 4, 1, 0, 0, tzinfo=dt.UTC),
            dt.datetime(2018, 4, 1, 23, 59, 59, tzinfo=dt.UTC),
            dt.datetime(2018, 4, 2, 0, 30, tzinfo=cet),  # 23:30 UTC on April 1st
            dt.datetime(2018, 4, 2, 0, 0),  # naive: UTC
        ]
    )
    assert days.tolist() == [17622, 17622, 17622, 17623]
