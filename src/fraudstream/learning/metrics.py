"""Fraud Detection Handbook performance metrics: AUC ROC, average precision and card precision@k.

Why a re-implementation that follows the handbook line by line (chapter 3 "Baseline FDS",
chapter 4 "Precision top-k metrics", shared functions ``card_precision_top_k_day``,
``card_precision_top_k`` and ``performance_assessment``): the model registry promotes a model
when it beats the active one, and figures are only comparable with the handbook's published
ones (and with each other) when they are computed the same way, ties and empty days included.
The same pandas operations are used in the same order (``groupby(...).max()`` then a
``sort_values`` on the predictions with pandas' default sort), so even tied scores rank the
same cards. A unit test checks the results against a transcription of the handbook code.

Card precision@k models an investigation team that can check ``k`` cards a day: per day, each
card (customer) gets the maximum score of its transactions that day and the maximum of its
labels (a card is compromised if any of its transactions that day is a fraud), the ``k`` cards
with the highest scores are "checked", and CP@k is the number of compromised ones among them
divided by ``k`` (not by the number of cards that day). Cards found compromised on a day are
blocked, so by default they are dropped from every later day. The result is the mean over days.

Column names default to the handbook's (``TX_TIME_DAYS``, ``CUSTOMER_ID``, ``TX_FRAUD``,
``predictions``); :func:`day_index` turns timestamps into its day numbers.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "CardPrecisionTopK",
    "assessment_metrics",
    "card_precision_top_k",
    "card_precision_top_k_day",
    "day_index",
    "performance_assessment",
]

DAY_COL = "TX_TIME_DAYS"
CUSTOMER_COL = "CUSTOMER_ID"
LABEL_COL = "TX_FRAUD"
PREDICTION_COL = "predictions"


class CardPrecisionTopK(NamedTuple):
    """The handbook's return value ``(nb_compromised_cards_per_day, per_day_list, mean)``.

    A named tuple so that code written against the handbook (tuple unpacking) still works.
    """

    nb_compromised_cards_per_day: list[int]
    card_precision_top_k_per_day: list[float]
    mean_card_precision_top_k: float


def day_index(times: Any) -> np.ndarray:
    """Whole UTC days since the epoch (int64), the handbook's ``TX_TIME_DAYS`` up to an offset.

    The handbook counts days from the start of its simulation, which began at midnight, so its
    day boundaries are midnights; only the boundaries matter to CP@k (days are just grouped and
    ordered), hence epoch days give identical results. Naive timestamps are taken as UTC.
    """
    ts = pd.to_datetime(pd.Series(times), utc=True)
    days = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=1)
    return days.to_numpy(dtype=np.int64)


def card_precision_top_k_day(
    df_day: pd.DataFrame,
    top_k: int,
    *,
    customer_col: str = CUSTOMER_COL,
    label_col: str = LABEL_COL,
    prediction_col: str = PREDICTION_COL,
) -> tuple[list[Hashable], float]:
    """``(compromised cards among the day's top k, CP@k of the day)`` for one day's rows.

    ``df_day`` must hold only ``prediction_col``, ``customer_col`` and ``label_col`` (as in the
    handbook, where the max is taken over every remaining column).
    """
    # Per card: max score and max label (compromised if any fraud that day), highest scores first.
    df_day = (
        df_day.groupby(customer_col)
        .max()
        .sort_values(by=prediction_col, ascending=False)
        .reset_index(drop=False)
    )
    df_day_top_k = df_day.head(top_k)
    detected = list(df_day_top_k[df_day_top_k[label_col] == 1][customer_col])
    return detected, len(detected) / top_k


def card_precision_top_k(
    predictions_df: pd.DataFrame,
    top_k: int = 100,
    remove_detected_compromised_cards: bool = True,
    *,
    day_col: str = DAY_COL,
    customer_col: str = CUSTOMER_COL,
    label_col: str = LABEL_COL,
    prediction_col: str = PREDICTION_COL,
) -> CardPrecisionTopK:
    """Mean daily card precision@``top_k`` over the days of ``predictions_df`` (see the module doc).

    With ``remove_detected_compromised_cards`` (the handbook's default), cards detected as
    compromised on a day are removed from all later days: once blocked they cannot be
    "detected" again, which would otherwise inflate the metric. The number of compromised cards
    per day is counted after that removal. With no rows at all the mean is NaN.
    """
    if top_k <= 0:
        raise ValueError("top_k must be positive")
    list_days = list(predictions_df[day_col].unique())
    list_days.sort()

    detected_cards: list[Hashable] = []
    per_day: list[float] = []
    nb_compromised_per_day: list[int] = []
    for day in list_days:
        df_day = predictions_df[predictions_df[day_col] == day]
        df_day = df_day[[prediction_col, customer_col, label_col]]
        df_day = df_day[~df_day[customer_col].isin(detected_cards)]

        nb_compromised_per_day.append(len(df_day[df_day[label_col] == 1][customer_col].unique()))

        detected_today, cp_day = card_precision_top_k_day(
            df_day, top_k, customer_col=customer_col, label_col=label_col, prediction_col=prediction_col
        )
        per_day.append(cp_day)
        if remove_detected_compromised_cards:
            detected_cards.extend(detected_today)

    mean = float(np.mean(per_day)) if per_day else math.nan
    return CardPrecisionTopK(nb_compromised_per_day, per_day, mean)


def performance_assessment(
    predictions_df: pd.DataFrame,
    output_feature: str = LABEL_COL,
    prediction_feature: str = PREDICTION_COL,
    top_k_list: Sequence[int] = (100,),
    rounded: bool = True,
    *,
    day_col: str = DAY_COL,
    customer_col: str = CUSTOMER_COL,
) -> pd.DataFrame:
    """The handbook's one-row table: ``AUC ROC``, ``Average precision``, ``Card Precision@k``.

    AUC ROC and average precision come from scikit-learn on transactions; CP@k per
    :func:`card_precision_top_k` with detected cards removed. Rounded to 3 decimals by default,
    as in the handbook. scikit-learn raises when the labels hold a single class.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score  # heavy: only when used

    auc_roc = roc_auc_score(predictions_df[output_feature], predictions_df[prediction_feature])
    ap = average_precision_score(predictions_df[output_feature], predictions_df[prediction_feature])
    performances = pd.DataFrame([[auc_roc, ap]], columns=["AUC ROC", "Average precision"])
    for top_k in top_k_list:
        result = card_precision_top_k(
            predictions_df,
            top_k,
            day_col=day_col,
            customer_col=customer_col,
            label_col=output_feature,
            prediction_col=prediction_feature,
        )
        performances["Card Precision@" + str(top_k)] = result.mean_card_precision_top_k
    if rounded:
        performances = performances.round(3)
    return performances


def assessment_metrics(
    labels: Any,
    scores: Any,
    customer_ids: Any,
    days: Any,
    top_k_list: Sequence[int] = (100,),
) -> dict[str, float | int | None]:
    """Unrounded metrics as a JSON-ready dict, the form the model registry stores and compares.

    Keys: ``auc_roc``, ``average_precision``, ``card_precision@<k>`` for each k, ``n`` and
    ``n_fraud``. A metric that is undefined on this data (a single class, no rows) is None
    rather than NaN, because PostgreSQL's jsonb has no NaN. ``days`` are day numbers (see
    :func:`day_index`) or timestamps, which are converted.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64)
    d = np.asarray(days)
    if d.dtype.kind not in "iu":
        d = day_index(d)
    frame = pd.DataFrame(
        {PREDICTION_COL: s, CUSTOMER_COL: np.asarray(customer_ids), LABEL_COL: y, DAY_COL: d}
    )
    both_classes = 0 < int(y.sum()) < len(y)
    out: dict[str, float | int | None] = {
        "auc_roc": float(roc_auc_score(y, s)) if both_classes else None,
        "average_precision": float(average_precision_score(y, s)) if both_classes else None,
    }
    for k in top_k_list:
        mean = card_precision_top_k(frame, k).mean_card_precision_top_k
        out[f"card_precision@{k}"] = None if math.isnan(mean) else mean
    out["n"] = len(y)
    out["n_fraud"] = int(y.sum())
    return out
