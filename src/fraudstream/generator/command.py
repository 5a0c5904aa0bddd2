"""``fraudstream generate``: write a simulated, labelled transaction file.

The transactions come from :mod:`fraudstream.generator.handbook` (optionally extended by
:mod:`fraudstream.generator.extra`) and are written with the message-contract field names by
:func:`to_contract_frame`, which the producer reuses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from fraudstream.generator.extra import ExtraOptions, apply_extras
from fraudstream.generator.handbook import generate_dataset

__all__ = [
    "CONTRACT_COLUMNS",
    "CURRENCY",
    "EXTRA_CONTRACT_COLUMNS",
    "generate",
    "to_contract_frame",
    "write_contract_frame",
]

CURRENCY = "EUR"
#: Contract columns always present, in order.
CONTRACT_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "currency",
)
#: Optional contract columns and the internal columns they come from.
EXTRA_CONTRACT_COLUMNS: dict[str, str] = {
    "channel": "CHANNEL",
    "merchant_category": "MERCHANT_CATEGORY",
    "country": "COUNTRY",
    "lat": "LAT",
    "lon": "LON",
}
#: Ground-truth columns, always last.
LABEL_COLUMNS: tuple[str, ...] = ("is_fraud", "fraud_scenario")

_SUFFIXES = (".parquet", ".csv")


def _as_utc(values: pd.Series) -> pd.Series:
    """Timestamps as tz-aware UTC ``datetime64[ns, UTC]`` (naive values are taken as UTC)."""
    stamps = pd.to_datetime(values)
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    return stamps.astype("datetime64[ns, UTC]")


def to_contract_frame(transactions_df: pd.DataFrame) -> pd.DataFrame:
    """Map handbook-style transactions to the message-contract columns.

    Args:
        transactions_df: frame with ``TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID,
            TX_AMOUNT`` and usually ``TX_FRAUD, TX_FRAUD_SCENARIO`` and the optional
            ``CHANNEL, MERCHANT_CATEGORY, COUNTRY, LAT, LON`` columns.

    Returns:
        ``transaction_id`` (str), ``tx_datetime`` (tz-aware UTC timestamp), ``customer_id`` and
        ``terminal_id`` (str of the integer), ``tx_amount`` (float), ``currency`` ("EUR"), the
        optional ``channel, merchant_category, country, lat, lon`` when present, then the ground
        truth ``is_fraud`` (bool) and ``fraud_scenario`` (int, 0 = genuine). Row order and index
        are those of the input.
    """
    src = transactions_df
    data: dict[str, object] = {
        "transaction_id": src["TRANSACTION_ID"].astype("int64").astype(str),
        "tx_datetime": _as_utc(src["TX_DATETIME"]),
        "customer_id": src["CUSTOMER_ID"].astype("int64").astype(str),
        "terminal_id": src["TERMINAL_ID"].astype("int64").astype(str),
        "tx_amount": src["TX_AMOUNT"].astype("float64"),
        "currency": pd.Series(CURRENCY, index=src.index, dtype=str),
    }
    for name, column in EXTRA_CONTRACT_COLUMNS.items():
        if column in src.columns:
            kind = "float64" if name in ("lat", "lon") else str
            data[name] = src[column].astype(kind)
    if "TX_FRAUD_SCENARIO" in src.columns:
        scenario = src["TX_FRAUD_SCENARIO"].astype("int64")
    else:
        scenario = pd.Series(0, index=src.index, dtype="int64")
    fraud = src["TX_FRAUD"].astype("int64") if "TX_FRAUD" in src.columns else scenario
    data["is_fraud"] = fraud != 0
    data["fraud_scenario"] = scenario
    return pd.DataFrame(data, index=src.index)


def _iso_utc(stamps: pd.Series) -> npt.NDArray[np.str_]:
    """ISO-8601 strings with a ``+00:00`` offset for tz-aware UTC timestamps."""
    naive = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    whole_seconds = bool((naive.astype(np.int64) % 1_000_000_000 == 0).all())
    text = np.datetime_as_string(naive, unit="s" if whole_seconds else "us")
    return np.char.add(text.astype(str), "+00:00")


def write_contract_frame(frame: pd.DataFrame, out: Path) -> None:
    """Write a contract frame to ``.parquet`` (tz-aware UTC timestamps) or ``.csv`` (ISO-8601
    strings with ``+00:00``), chosen by the file suffix."""
    suffix = out.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"unsupported output suffix {out.suffix!r}; use .parquet or .csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        text = frame.copy()
        text["tx_datetime"] = _iso_utc(frame["tx_datetime"])
        text.to_csv(out, index=False)


def _summary(frame: pd.DataFrame, out: Path, seconds: float) -> Table:
    table = Table(title="Simulated transactions", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("output", str(out))
    table.add_row("rows", f"{len(frame):,}")
    table.add_row("frauds", f"{int(frame['is_fraud'].sum()):,}")
    counts = frame.loc[frame["is_fraud"], "fraud_scenario"].value_counts().sort_index()
    for scenario, count in counts.items():
        table.add_row(f"  scenario {scenario}", f"{int(count):,}")
    table.add_row("seconds", f"{seconds:.1f}")
    return table


def generate(
    out: Annotated[Path, typer.Option("--out", help="Output file; .parquet or .csv (by suffix).")],
    customers: Annotated[int, typer.Option("--customers", min=3, help="Customers.")] = 5000,
    terminals: Annotated[int, typer.Option("--terminals", min=2, help="Terminals.")] = 10000,
    days: Annotated[int, typer.Option("--days", min=1, help="Simulated days.")] = 183,
    start: Annotated[str, typer.Option("--start", help="First simulated day (YYYY-MM-DD).")] = "2018-04-01",
    radius: Annotated[
        float, typer.Option("--radius", min=0.0, help="Terminals used within this distance.")
    ] = 5.0,
    card_testing: Annotated[
        bool,
        typer.Option("--card-testing/--no-card-testing", help="Add scenario 4 (card testing)."),
    ] = False,
    account_takeover: Annotated[
        bool,
        typer.Option("--account-takeover/--no-account-takeover", help="Add scenario 5 (account takeover)."),
    ] = False,
    extra_fields: Annotated[
        bool,
        typer.Option(
            "--extra-fields/--no-extra-fields",
            help="Add channel, merchant_category, country, lat, lon.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the extra scenarios and fields only.")] = 42,
) -> None:
    """Simulate card transactions (Fraud Detection Handbook generator) and write them to a file.

    The defaults give the handbook's dataset: 1,754,155 transactions, 14,681 frauds.

    Extra scenarios (4: card testing, 5: account takeover) and fields are off unless enabled.
    """
    if out.suffix.lower() not in _SUFFIXES:
        raise typer.BadParameter("the file name must end with .parquet or .csv", param_hint="--out")
    try:
        start_date = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"not a date: {start!r}", param_hint="--start") from exc
    if pd.isna(start_date):
        raise typer.BadParameter(f"not a date: {start!r}", param_hint="--start")
    if start_date.tzinfo is not None:  # the simulation clock is naive UTC
        start_date = start_date.tz_convert("UTC").tz_localize(None)

    began = time.perf_counter()
    customers_df, terminals_df, transactions = generate_dataset(
        n_customers=customers,
        n_terminals=terminals,
        nb_days=days,
        start_date=start_date.strftime("%Y-%m-%d %H:%M:%S"),
        r=radius,
    )
    options = ExtraOptions(
        card_testing=card_testing,
        account_takeover=account_takeover,
        extra_fields=extra_fields,
        seed=seed,
    )
    transactions = apply_extras(customers_df, terminals_df, transactions, options)
    frame = to_contract_frame(transactions)
    write_contract_frame(frame, out)
    elapsed = time.perf_counter() - began
    Console().print(_summary(frame, out, elapsed))
