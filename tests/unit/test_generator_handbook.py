"""Tests of the handbook simulator re-implementation.

The ``_ref_*`` functions below are a literal transcription of the Fraud Detection Handbook code
(chapter 3, ``SimulatedDataset.ipynb``), kept here as the independent reference. The only
adaptations are for pandas 3 (``groupby(...).apply`` no longer passes the grouping column, so
the customers are iterated in id order, which is what the groupby did) and dtype normalisation.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pandas as pd
import pytest

from fraudstream.generator.handbook import (
    TRANSACTION_COLUMNS,
    add_frauds,
    generate_customer_profiles_table,
    generate_dataset,
    generate_terminal_profiles_table,
    generate_transactions,
    terminals_within_radius,
)

# --------------------------------------------------------------------------------------------
# Literal reference (handbook code)
# --------------------------------------------------------------------------------------------


def _ref_generate_customer_profiles_table(n_customers, random_state=0):
    np.random.seed(random_state)
    customer_id_properties = []
    for customer_id in range(n_customers):
        x_customer_id = np.random.uniform(0, 100)
        y_customer_id = np.random.uniform(0, 100)
        mean_amount = np.random.uniform(5, 100)
        std_amount = mean_amount / 2
        mean_nb_tx_per_day = np.random.uniform(0, 4)
        customer_id_properties.append(
            [customer_id, x_customer_id, y_customer_id, mean_amount, std_amount, mean_nb_tx_per_day]
        )
    return pd.DataFrame(
        customer_id_properties,
        columns=[
            "CUSTOMER_ID",
            "x_customer_id",
            "y_customer_id",
            "mean_amount",
            "std_amount",
            "mean_nb_tx_per_day",
        ],
    )


def _ref_generate_terminal_profiles_table(n_terminals, random_state=0):
    np.random.seed(random_state)
    terminal_id_properties = []
    for terminal_id in range(n_terminals):
        x_terminal_id = np.random.uniform(0, 100)
        y_terminal_id = np.random.uniform(0, 100)
        terminal_id_properties.append([terminal_id, x_terminal_id, y_terminal_id])
    return pd.DataFrame(terminal_id_properties, columns=["TERMINAL_ID", "x_terminal_id", "y_terminal_id"])


def _ref_get_list_terminals_within_radius(customer_profile, x_y_terminals, r):
    x_y_customer = customer_profile[["x_customer_id", "y_customer_id"]].values.astype(float)
    squared_diff_x_y = np.square(x_y_customer - x_y_terminals)
    dist_x_y = np.sqrt(np.sum(squared_diff_x_y, axis=1))
    available_terminals = list(np.where(dist_x_y < r)[0])
    return available_terminals


def _ref_generate_transactions_table(customer_profile, start_date="2018-04-01", nb_days=10):
    customer_transactions = []
    random.seed(int(customer_profile.CUSTOMER_ID))
    np.random.seed(int(customer_profile.CUSTOMER_ID))
    for day in range(nb_days):
        nb_tx = np.random.poisson(customer_profile.mean_nb_tx_per_day)
        if nb_tx > 0:
            for _tx in range(nb_tx):
                time_tx = int(np.random.normal(86400 / 2, 20000))
                if (time_tx > 0) and (time_tx < 86400):
                    amount = np.random.normal(customer_profile.mean_amount, customer_profile.std_amount)
                    if amount < 0:
                        amount = np.random.uniform(0, customer_profile.mean_amount * 2)
                    amount = np.round(amount, decimals=2)
                    if len(customer_profile.available_terminals) > 0:
                        terminal_id = random.choice(customer_profile.available_terminals)
                        customer_transactions.append(
                            [
                                time_tx + day * 86400,
                                day,
                                customer_profile.CUSTOMER_ID,
                                terminal_id,
                                amount,
                            ]
                        )
    customer_transactions = pd.DataFrame(
        customer_transactions,
        columns=["TX_TIME_SECONDS", "TX_TIME_DAYS", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"],
    )
    if len(customer_transactions) > 0:
        customer_transactions["TX_DATETIME"] = pd.to_datetime(
            customer_transactions["TX_TIME_SECONDS"], unit="s", origin=start_date
        )
        customer_transactions = customer_transactions[
            [
                "TX_DATETIME",
                "CUSTOMER_ID",
                "TERMINAL_ID",
                "TX_AMOUNT",
                "TX_TIME_SECONDS",
                "TX_TIME_DAYS",
            ]
        ]
    return customer_transactions


def _ref_generate_dataset(n_customers=10000, n_terminals=1000000, nb_days=90, start_date="2018-04-01", r=5):
    customer_profiles_table = _ref_generate_customer_profiles_table(n_customers, random_state=0)
    terminal_profiles_table = _ref_generate_terminal_profiles_table(n_terminals, random_state=1)
    x_y_terminals = terminal_profiles_table[["x_terminal_id", "y_terminal_id"]].values.astype(float)
    customer_profiles_table["available_terminals"] = pd.Series(
        [
            _ref_get_list_terminals_within_radius(row, x_y_terminals=x_y_terminals, r=r)
            for _, row in customer_profiles_table.iterrows()
        ],
        dtype=object,
    )
    customer_profiles_table["nb_terminals"] = customer_profiles_table.available_terminals.apply(len)
    # groupby('CUSTOMER_ID').apply(lambda x: generate_transactions_table(x.iloc[0], ...))
    parts = [
        _ref_generate_transactions_table(
            customer_profiles_table.iloc[i], start_date=start_date, nb_days=nb_days
        )
        for i in range(len(customer_profiles_table))
    ]
    parts = [p for p in parts if len(p) > 0]
    transactions_df = pd.concat(parts).reset_index(drop=True)
    transactions_df = transactions_df.astype(
        {
            "CUSTOMER_ID": "int64",
            "TERMINAL_ID": "int64",
            "TX_AMOUNT": "float64",
            "TX_TIME_SECONDS": "int64",
            "TX_TIME_DAYS": "int64",
        }
    )
    transactions_df = transactions_df.sort_values("TX_DATETIME")
    # (the handbook uses inplace=True, deprecated in pandas 3.1; same result)
    transactions_df = transactions_df.reset_index(drop=True)
    transactions_df = transactions_df.reset_index()
    transactions_df = transactions_df.rename(columns={"index": "TRANSACTION_ID"})
    return (customer_profiles_table, terminal_profiles_table, transactions_df)


def _ref_add_frauds(customer_profiles_table, terminal_profiles_table, transactions_df):
    transactions_df["TX_FRAUD"] = 0
    transactions_df["TX_FRAUD_SCENARIO"] = 0
    # Scenario 1
    transactions_df.loc[transactions_df.TX_AMOUNT > 220, "TX_FRAUD"] = 1
    transactions_df.loc[transactions_df.TX_AMOUNT > 220, "TX_FRAUD_SCENARIO"] = 1
    # Scenario 2
    for day in range(transactions_df.TX_TIME_DAYS.max()):
        compromised_terminals = terminal_profiles_table.TERMINAL_ID.sample(n=2, random_state=day)
        compromised_transactions = transactions_df[
            (transactions_df.TX_TIME_DAYS >= day)  # noqa: SIM300 (handbook code)
            & (transactions_df.TX_TIME_DAYS < day + 28)  # noqa: SIM300
            & (transactions_df.TERMINAL_ID.isin(compromised_terminals))
        ]
        transactions_df.loc[compromised_transactions.index, "TX_FRAUD"] = 1
        transactions_df.loc[compromised_transactions.index, "TX_FRAUD_SCENARIO"] = 2
    # Scenario 3
    for day in range(transactions_df.TX_TIME_DAYS.max()):
        compromised_customers = customer_profiles_table.CUSTOMER_ID.sample(n=3, random_state=day).values
        compromised_transactions = transactions_df[
            (transactions_df.TX_TIME_DAYS >= day)  # noqa: SIM300 (handbook code)
            & (transactions_df.TX_TIME_DAYS < day + 14)  # noqa: SIM300
            & (transactions_df.CUSTOMER_ID.isin(compromised_customers))
        ]
        nb_compromised_transactions = len(compromised_transactions)
        random.seed(day)
        index_fauds = random.sample(
            list(compromised_transactions.index.values), k=int(nb_compromised_transactions / 3)
        )
        transactions_df.loc[index_fauds, "TX_AMOUNT"] = transactions_df.loc[index_fauds, "TX_AMOUNT"] * 5
        transactions_df.loc[index_fauds, "TX_FRAUD"] = 1
        transactions_df.loc[index_fauds, "TX_FRAUD_SCENARIO"] = 3
    return transactions_df


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["TX_DATETIME"] = out["TX_DATETIME"].astype("datetime64[ns]")
    ints = [c for c in TRANSACTION_COLUMNS if c not in ("TX_DATETIME", "TX_AMOUNT")]
    return out.astype({c: "int64" for c in ints if c in out.columns})


# --------------------------------------------------------------------------------------------
# Fast comparisons on small sizes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "seed"), [(1, 0), (57, 0), (300, 3)])
def test_customer_profiles_match_reference(n: int, seed: int) -> None:
    pd.testing.assert_frame_equal(
        generate_customer_profiles_table(n, random_state=seed),
        _ref_generate_customer_profiles_table(n, random_state=seed),
    )


def test_customer_profiles_match_published_values() -> None:
    table = generate_customer_profiles_table(5, random_state=0)
    assert table.loc[0, "x_customer_id"] == pytest.approx(54.881350)
    assert table.loc[4, "mean_nb_tx_per_day"] == pytest.approx(3.480049)
    assert table.loc[3, "std_amount"] == pytest.approx(5.874213)


@pytest.mark.parametrize(("n", "seed"), [(5, 0), (123, 1)])
def test_terminal_profiles_match_reference(n: int, seed: int) -> None:
    pd.testing.assert_frame_equal(
        generate_terminal_profiles_table(n, random_state=seed),
        _ref_generate_terminal_profiles_table(n, random_state=seed),
    )


def test_generate_customer_profiles_does_not_touch_global_state() -> None:
    np.random.seed(123)
    expected = np.random.uniform()
    np.random.seed(123)
    generate_customer_profiles_table(10)
    generate_terminal_profiles_table(10)
    assert np.random.uniform() == expected


@pytest.mark.parametrize("r", [5, 20, 50])
def test_terminals_within_radius_match_reference(r: float) -> None:
    customers = _ref_generate_customer_profiles_table(40, random_state=0)
    terminals = _ref_generate_terminal_profiles_table(500, random_state=1)
    x_y_terminals = terminals[["x_terminal_id", "y_terminal_id"]].values.astype(float)
    offsets, indices = terminals_within_radius(
        customers[["x_customer_id", "y_customer_id"]].to_numpy(), x_y_terminals, r
    )
    for i, row in customers.iterrows():
        expected = [int(t) for t in _ref_get_list_terminals_within_radius(row, x_y_terminals, r)]
        assert indices[offsets[i] : offsets[i + 1]].tolist() == expected


def test_terminals_within_radius_is_strict_and_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    import fraudstream.generator.handbook as handbook

    monkeypatch.setattr(handbook, "_DISTANCE_CHUNK_PAIRS", 3)
    customers = np.array([[0.0, 0.0], [10.0, 10.0], [50.0, 50.0]])
    terminals = np.array([[3.0, 4.0], [10.0, 14.999], [0.0, 0.0]])
    offsets, indices = terminals_within_radius(customers, terminals, 5)
    assert offsets.tolist() == [0, 1, 2, 2]  # distance exactly 5 is excluded
    assert indices.tolist() == [2, 1]


@pytest.mark.parametrize(
    ("n_customers", "n_terminals", "nb_days", "r"),
    [
        (50, 100, 10, 5),
        (50, 100, 10, 20),
        (30, 200, 40, 15),
        # ~60k transactions: hundreds of same-second ties, whose order the sort must reproduce
        (1000, 2000, 30, 5),
    ],
)
def test_dataset_matches_reference(n_customers: int, n_terminals: int, nb_days: int, r: float) -> None:
    ref_customers, ref_terminals, ref_tx = _ref_generate_dataset(
        n_customers, n_terminals, nb_days, "2018-04-01", r
    )
    customers, terminals, tx = generate_dataset(
        n_customers, n_terminals, nb_days, "2018-04-01", r, with_frauds=False
    )
    assert len(tx) > 0
    pd.testing.assert_frame_equal(terminals, ref_terminals)
    pd.testing.assert_frame_equal(
        customers.drop(columns="available_terminals"),
        ref_customers.drop(columns="available_terminals"),
    )
    assert customers["available_terminals"].tolist() == [
        [int(t) for t in terms] for terms in ref_customers["available_terminals"]
    ]
    assert list(tx.columns) == list(TRANSACTION_COLUMNS[:7])
    pd.testing.assert_frame_equal(tx, _normalise(ref_tx))

    labelled = add_frauds(customers, terminals, tx)
    ref_labelled = _ref_add_frauds(ref_customers, ref_terminals, ref_tx.copy())
    assert list(labelled.columns) == list(TRANSACTION_COLUMNS)
    pd.testing.assert_frame_equal(labelled, _normalise(ref_labelled))
    # add_frauds does not modify its input
    assert "TX_FRAUD" not in tx.columns


def test_add_frauds_matches_reference_with_dense_frauds() -> None:
    """Few terminals and customers, so scenarios 2 and 3 hit often and overlap (repeated x5)."""
    customers, terminals, tx = generate_dataset(12, 15, 60, "2018-04-01", 40, with_frauds=False)
    ref = _ref_add_frauds(customers.copy(), terminals.copy(), tx.copy())
    ours = add_frauds(customers, terminals, tx)
    pd.testing.assert_frame_equal(ours, _normalise(ref))
    counts = ours["TX_FRAUD_SCENARIO"].value_counts()
    assert counts.get(2, 0) > 0 and counts.get(3, 0) > 0
    # some amounts were multiplied by 5 more than once
    ratio = (ours["TX_AMOUNT"] / tx["TX_AMOUNT"]).round(6)
    assert (ratio == 25).any()


def test_generate_transactions_other_start_date() -> None:
    customers, _, tx = generate_dataset(20, 50, 5, "2020-02-28", 30, with_frauds=False)
    again = generate_transactions(customers, nb_days=5, start_date="2020-02-28")
    pd.testing.assert_frame_equal(tx, again)
    expected = pd.Timestamp("2020-02-28") + pd.to_timedelta(tx["TX_TIME_SECONDS"], unit="s")
    assert (tx["TX_DATETIME"] == expected).all()
    assert tx["TX_DATETIME"].is_monotonic_increasing
    assert tx["TX_DATETIME"].max() < pd.Timestamp("2020-03-04")  # leap year: 29 Feb exists


def test_customers_without_terminals_produce_no_transactions() -> None:
    customers, _, tx = generate_dataset(30, 3, 5, "2018-04-01", 1, with_frauds=False)
    without = set(customers.loc[customers["nb_terminals"] == 0, "CUSTOMER_ID"])
    assert without
    assert not without & set(tx["CUSTOMER_ID"])


def test_empty_dataset() -> None:
    _, _, tx = generate_dataset(3, 5, 0, "2018-04-01", 5)
    assert len(tx) == 0
    assert list(tx.columns) == list(TRANSACTION_COLUMNS)


# --------------------------------------------------------------------------------------------
# Full size: the handbook's published figures
# --------------------------------------------------------------------------------------------


def test_full_handbook_dataset_exact_counts() -> None:
    start = time.perf_counter()
    customers, terminals, tx = generate_dataset(
        n_customers=5000, n_terminals=10000, nb_days=183, start_date="2018-04-01", r=5
    )
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"generation took {elapsed:.1f}s"
    assert len(customers) == 5000 and len(terminals) == 10000
    assert len(tx) == 1_754_155
    assert int(tx["TX_FRAUD"].sum()) == 14_681
    by_scenario = tx["TX_FRAUD_SCENARIO"].value_counts().to_dict()
    assert by_scenario == {0: 1_754_155 - 14_681, 1: 973, 2: 9_077, 3: 4_631}
    assert (tx["TRANSACTION_ID"].to_numpy() == np.arange(len(tx))).all()
    # first and last rows as printed in the handbook
    head = tx.iloc[0]
    assert (head["CUSTOMER_ID"], head["TERMINAL_ID"], head["TX_AMOUNT"]) == (596, 3156, 57.16)
    assert head["TX_DATETIME"] == pd.Timestamp("2018-04-01 00:00:31")
    tail = tx.iloc[-1]
    assert (tail["CUSTOMER_ID"], tail["TERMINAL_ID"], tail["TX_AMOUNT"]) == (3542, 9849, 23.59)
    assert tail["TX_TIME_SECONDS"] == 15811197 and tail["TX_TIME_DAYS"] == 182
    assert tx.loc[2, "TX_AMOUNT"] == 146.00 and tx.loc[1754151, "TX_AMOUNT"] == 1.23
    assert tx["TX_FRAUD"].mean() == pytest.approx(0.008369271814634397, rel=1e-12)
