"""Tests of the opt-in scenarios and fields of :mod:`fraudstream.generator.extra`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream.generator.extra import (
    CHANNELS,
    SCENARIO_ACCOUNT_TAKEOVER,
    SCENARIO_CARD_TESTING,
    ExtraOptions,
    account_takeover_transactions,
    add_extra_fields,
    apply_extras,
    card_testing_transactions,
    grid_to_country,
    grid_to_lat_lon,
    terminal_attributes,
)
from fraudstream.generator.handbook import TRANSACTION_COLUMNS, generate_dataset

EXTRA_COLUMNS = ["CHANNEL", "MERCHANT_CATEGORY", "COUNTRY", "LAT", "LON"]


@pytest.fixture(scope="module")
def dataset() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return generate_dataset(300, 800, 40, "2018-04-01", 10)


def test_everything_off_returns_the_handbook_frame(dataset) -> None:
    customers, terminals, tx = dataset
    assert not ExtraOptions().any
    assert apply_extras(customers, terminals, tx, ExtraOptions(seed=7)) is tx


def test_extra_fields_only_add_columns(dataset) -> None:
    customers, terminals, tx = dataset
    out = apply_extras(customers, terminals, tx, ExtraOptions(extra_fields=True))
    assert list(out.columns) == list(TRANSACTION_COLUMNS) + EXTRA_COLUMNS
    pd.testing.assert_frame_equal(out[list(TRANSACTION_COLUMNS)], tx)
    attrs = terminal_attributes(terminals, 42)
    assert (out["CHANNEL"].to_numpy() == attrs.loc[tx["TERMINAL_ID"], "CHANNEL"].to_numpy()).all()
    assert set(out["CHANNEL"]) == set(CHANNELS)
    assert (out.loc[out["CHANNEL"] == "atm", "MERCHANT_CATEGORY"] == "6011").all()
    assert (out.loc[out["CHANNEL"] != "atm", "MERCHANT_CATEGORY"] != "6011").all()
    assert out["MERCHANT_CATEGORY"].str.fullmatch(r"\d{4}").all()
    assert out["LAT"].between(36, 60).all() and out["LON"].between(-10, 30).all()
    assert out["COUNTRY"].str.fullmatch(r"[A-Z]{2}").all()


def test_grid_mapping_is_deterministic() -> None:
    lat, lon = grid_to_lat_lon([0.0, 100.0, 50.0], [0.0, 100.0, 25.0])
    assert lat.tolist() == [36.0, 60.0, 42.0]
    assert lon.tolist() == [-10.0, 30.0, 10.0]
    assert grid_to_country([0.0, 99.9, 100.0, 30.0], [0.0, 99.9, 100.0, 60.0]).tolist() == [
        "PT",
        "LT",
        "LT",
        "DE",
    ]


def test_terminal_attributes_shares_and_seed() -> None:
    _, terminals, _ = generate_dataset(3, 10000, 0, "2018-04-01", 5, with_frauds=False)
    attrs = terminal_attributes(terminals, seed=1)
    shares = attrs["CHANNEL"].value_counts(normalize=True)
    assert shares["pos"] == pytest.approx(0.70, abs=0.02)
    assert shares["ecom"] == pytest.approx(0.22, abs=0.02)
    assert shares["atm"] == pytest.approx(0.08, abs=0.02)
    pd.testing.assert_frame_equal(attrs, terminal_attributes(terminals, seed=1))
    assert not attrs["CHANNEL"].equals(terminal_attributes(terminals, seed=2)["CHANNEL"])


def test_add_extra_fields_rejects_unknown_terminals(dataset) -> None:
    _, terminals, tx = dataset
    with pytest.raises(ValueError, match="missing"):
        add_extra_fields(tx, terminals.iloc[:10])


def test_card_testing_bursts(dataset) -> None:
    customers, terminals, tx = dataset
    rows = card_testing_transactions(customers, terminals, tx, seed=3, per_day=1.5)
    assert len(rows) > 0
    assert (rows["TX_FRAUD"] == 1).all()
    assert (rows["TX_FRAUD_SCENARIO"] == SCENARIO_CARD_TESTING).all()
    channel = terminal_attributes(terminals, 3)["CHANNEL"]
    assert (channel.loc[rows["TERMINAL_ID"]] == "ecom").all()
    # rows come burst by burst: tiny tests then one large purchase
    ends = np.flatnonzero(rows["TX_AMOUNT"].to_numpy() >= 250)
    starts = np.r_[0, ends[:-1] + 1]
    assert 20 <= len(ends) <= 100  # Poisson(1.5 * 40)
    for first, last in zip(starts, ends, strict=True):
        tests, buy = rows.iloc[first:last], rows.iloc[last]
        assert 3 <= len(tests) <= 8
        assert tests["TX_AMOUNT"].between(0.5, 2.0).all()
        assert tests["TERMINAL_ID"].nunique() == 1
        assert buy["TERMINAL_ID"] != tests["TERMINAL_ID"].iloc[0]
        assert tests["CUSTOMER_ID"].nunique() == 1
        assert buy["CUSTOMER_ID"] == tests["CUSTOMER_ID"].iloc[0]
        seconds = tests["TX_TIME_SECONDS"].to_numpy()
        assert (np.diff(seconds) >= 5).all() and seconds[-1] - seconds[0] <= 15 * 60
        assert 120 <= buy["TX_TIME_SECONDS"] - seconds[-1] <= 1800
        assert 250 <= buy["TX_AMOUNT"] <= 1500
        assert buy["TX_TIME_DAYS"] == tests["TX_TIME_DAYS"].iloc[0]


def test_account_takeover_events(dataset) -> None:
    customers, terminals, tx = dataset
    rows = account_takeover_transactions(customers, terminals, tx, seed=5, per_day=1.0, min_distance=50)
    assert len(rows) > 0
    assert (rows["TX_FRAUD"] == 1).all()
    assert (rows["TX_FRAUD_SCENARIO"] == SCENARIO_ACCOUNT_TAKEOVER).all()
    profiles = customers.set_index("CUSTOMER_ID")
    terminal_xy = terminals.set_index("TERMINAL_ID")[["x_terminal_id", "y_terminal_id"]]
    channel = terminal_attributes(terminals, 5)["CHANNEL"]
    history = tx.assign(CHANNEL=channel.loc[tx["TERMINAL_ID"]].to_numpy())
    # consecutive rows of one customer with gaps <= 10 minutes form an event
    event = (
        (rows["CUSTOMER_ID"] != rows["CUSTOMER_ID"].shift())
        | (rows["TX_TIME_SECONDS"].diff() > 600)
        | (rows["TX_TIME_SECONDS"].diff() < 0)
    ).cumsum()
    for _, group in rows.groupby(event):
        assert 4 <= len(group) <= 10
        gaps = np.diff(group["TX_TIME_SECONDS"].to_numpy())
        assert ((gaps >= 30) & (gaps <= 600)).all()
        customer = int(group["CUSTOMER_ID"].iloc[0])
        home = profiles.loc[customer, ["x_customer_id", "y_customer_id"]].to_numpy(float)
        xy = terminal_xy.loc[group["TERMINAL_ID"]].to_numpy()
        assert (np.sqrt(((xy - home) ** 2).sum(axis=1)) >= 50).all()
        used = history.loc[history["CUSTOMER_ID"] == customer, "CHANNEL"].value_counts()
        event_channels = set(channel.loc[group["TERMINAL_ID"]])
        assert len(event_channels) == 1
        (event_channel,) = event_channels
        assert used.get(event_channel, 0) == min(used.get(c, 0) for c in CHANNELS)
        mean = profiles.loc[customer, "mean_amount"]
        assert group["TX_AMOUNT"].between(1.5 * mean - 0.01, 5 * mean + 0.01).all()


def test_injection_preserves_handbook_rows(dataset) -> None:
    customers, terminals, tx = dataset
    options = ExtraOptions(card_testing=True, account_takeover=True, seed=11)
    out = apply_extras(customers, terminals, tx, options)
    assert list(out.columns) == list(TRANSACTION_COLUMNS)
    assert out["TX_DATETIME"].is_monotonic_increasing
    assert out["TRANSACTION_ID"].is_unique
    injected = out["TX_FRAUD_SCENARIO"].isin([4, 5])
    assert injected.any()
    assert set(out.loc[injected, "TX_FRAUD_SCENARIO"]) == {4, 5}
    assert (out.loc[injected, "TX_FRAUD"] == 1).all()
    original = out.loc[~injected].sort_values("TRANSACTION_ID").reset_index(drop=True)
    pd.testing.assert_frame_equal(original, tx)
    new_ids = out.loc[injected, "TRANSACTION_ID"].to_numpy()
    assert sorted(new_ids) == list(range(len(tx), len(tx) + injected.sum()))
    assert (np.diff(new_ids) > 0).all()  # numbered in time order
    expected = pd.Timestamp("2018-04-01") + pd.to_timedelta(out["TX_TIME_SECONDS"], unit="s")
    assert (out["TX_DATETIME"] == expected).all()
    assert (out["TX_TIME_DAYS"] == out["TX_TIME_SECONDS"] // 86400).all()
    assert out["TX_TIME_DAYS"].max() <= tx["TX_TIME_DAYS"].max()


def test_extras_are_reproducible_and_independent(dataset) -> None:
    customers, terminals, tx = dataset
    both = ExtraOptions(card_testing=True, account_takeover=True, extra_fields=True, seed=9)
    first = apply_extras(customers, terminals, tx, both)
    pd.testing.assert_frame_equal(first, apply_extras(customers, terminals, tx, both))
    other = apply_extras(
        customers, terminals, tx, ExtraOptions(card_testing=True, account_takeover=True, seed=10)
    )
    assert not first[list(TRANSACTION_COLUMNS)].equals(other)
    # enabling card testing does not change the account takeovers
    takeover_only = apply_extras(customers, terminals, tx, ExtraOptions(account_takeover=True, seed=9))
    columns = ["TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"]

    def takeovers(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[frame["TX_FRAUD_SCENARIO"] == 5, columns].reset_index(drop=True)

    pd.testing.assert_frame_equal(takeovers(first), takeovers(takeover_only))


def test_extras_on_empty_transactions() -> None:
    customers, terminals, tx = generate_dataset(5, 10, 0, "2018-04-01", 5)
    options = ExtraOptions(card_testing=True, account_takeover=True, extra_fields=True)
    out = apply_extras(customers, terminals, tx, options)
    assert len(out) == 0
    assert list(out.columns) == list(TRANSACTION_COLUMNS) + EXTRA_COLUMNS
