"""Tests of the ``generate`` command and the message-contract mapping."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from fraudstream.generator.command import (
    CONTRACT_COLUMNS,
    generate,
    to_contract_frame,
    write_contract_frame,
)
from fraudstream.generator.extra import ExtraOptions, apply_extras
from fraudstream.generator.handbook import generate_dataset

ISO_UTC = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00"
SMALL = ["--customers", "60", "--terminals", "150", "--days", "20", "--radius", "15"]


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test application."""

    app.command("generate")(generate)
    return app


@pytest.fixture(scope="module")
def small() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return generate_dataset(60, 150, 20, "2018-04-01", 15)


def test_to_contract_frame(small) -> None:
    _, _, tx = small
    frame = to_contract_frame(tx)
    assert list(frame.columns) == [*CONTRACT_COLUMNS, "is_fraud", "fraud_scenario"]
    assert len(frame) == len(tx)
    assert str(frame["tx_datetime"].dtype) == "datetime64[ns, UTC]"
    assert (frame["tx_datetime"].dt.tz_localize(None) == tx["TX_DATETIME"]).all()
    assert frame["transaction_id"].tolist() == [str(i) for i in tx["TRANSACTION_ID"]]
    assert frame["customer_id"].tolist() == [str(i) for i in tx["CUSTOMER_ID"]]
    assert frame["terminal_id"].tolist() == [str(i) for i in tx["TERMINAL_ID"]]
    assert (frame["tx_amount"] == tx["TX_AMOUNT"]).all()
    assert (frame["currency"] == "EUR").all()
    assert frame["is_fraud"].dtype == bool
    assert (frame["is_fraud"] == (tx["TX_FRAUD"] == 1)).all()
    assert str(frame["fraud_scenario"].dtype) == "int64"
    assert (frame["fraud_scenario"] == tx["TX_FRAUD_SCENARIO"]).all()
    assert frame["is_fraud"].any()


def test_to_contract_frame_with_extra_fields_and_unlabelled(small) -> None:
    customers, terminals, tx = small
    extended = apply_extras(customers, terminals, tx, ExtraOptions(extra_fields=True))
    frame = to_contract_frame(extended)
    assert list(frame.columns) == [
        *CONTRACT_COLUMNS,
        "channel",
        "merchant_category",
        "country",
        "lat",
        "lon",
        "is_fraud",
        "fraud_scenario",
    ]
    assert frame["lat"].dtype == "float64"
    unlabelled = to_contract_frame(tx.drop(columns=["TX_FRAUD", "TX_FRAUD_SCENARIO"]))
    assert not unlabelled["is_fraud"].any() and (unlabelled["fraud_scenario"] == 0).all()


def test_write_csv_keeps_subsecond_precision(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"tx_datetime": pd.to_datetime(["2018-04-01 00:00:00.250", "2018-04-01 00:00:01.000"])}
    )
    frame["tx_datetime"] = frame["tx_datetime"].dt.tz_localize("UTC")
    write_contract_frame(frame, tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text().split()
    assert text[1:] == ["2018-04-01T00:00:00.250000+00:00", "2018-04-01T00:00:01.000000+00:00"]
    with pytest.raises(ValueError, match="suffix"):
        write_contract_frame(frame, tmp_path / "t.json")


def test_cli_csv(tmp_path: Path, small) -> None:
    out = tmp_path / "sub" / "tx.csv"
    result = CliRunner().invoke(_app(), ["generate", *SMALL, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rows" in result.output and "scenario" in result.output
    written = pd.read_csv(out, dtype=str)
    expected = to_contract_frame(small[2])
    assert list(written.columns) == list(expected.columns)
    assert len(written) == len(expected)
    assert written["tx_datetime"].str.fullmatch(ISO_UTC).all()
    parsed = pd.to_datetime(written["tx_datetime"], format="ISO8601")
    assert (parsed.to_numpy() == expected["tx_datetime"].to_numpy()).all()
    assert written["transaction_id"].tolist() == expected["transaction_id"].tolist()
    assert written["customer_id"].tolist() == expected["customer_id"].tolist()
    assert (written["tx_amount"].astype(float) == expected["tx_amount"]).all()
    assert (written["is_fraud"] == expected["is_fraud"].astype(str)).all()
    assert (written["currency"] == "EUR").all()


def test_cli_parquet_with_extras(tmp_path: Path) -> None:
    out = tmp_path / "tx.parquet"
    extras = [
        "--card-testing",
        "--account-takeover",
        "--extra-fields",
        "--seed",
        "3",
    ]
    result = CliRunner().invoke(_app(), ["generate", *SMALL, "--out", str(out), *extras])
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(out)
    assert str(written["tx_datetime"].dtype) == "datetime64[ns, UTC]"
    assert written["is_fraud"].dtype == bool
    assert {"channel", "merchant_category", "country", "lat", "lon"} <= set(written.columns)
    scenarios = set(written["fraud_scenario"])
    assert {4, 5} <= scenarios
    assert written.loc[written["fraud_scenario"] > 0, "is_fraud"].all()
    assert not written.loc[written["fraud_scenario"] == 0, "is_fraud"].any()
    assert written["tx_datetime"].is_monotonic_increasing
    again = tmp_path / "again.parquet"
    result = CliRunner().invoke(_app(), ["generate", *extras, *SMALL, "--out", str(again)])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(written, pd.read_parquet(again))


def test_cli_defaults_match_handbook_options(tmp_path: Path, small) -> None:
    out = tmp_path / "tx.parquet"
    result = CliRunner().invoke(_app(), ["generate", *SMALL, "--out", str(out), "--start", "2018-04-01"])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_parquet(out), to_contract_frame(small[2]))


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_suffix = runner.invoke(_app(), ["generate", *SMALL, "--out", str(tmp_path / "x.json")])
    assert bad_suffix.exit_code == 2
    assert not (tmp_path / "x.json").exists()
    bad_date = runner.invoke(
        _app(), ["generate", *SMALL, "--out", str(tmp_path / "x.csv"), "--start", "nope"]
    )
    assert bad_date.exit_code == 2
    missing_out = runner.invoke(_app(), ["generate", *SMALL])
    assert missing_out.exit_code == 2
