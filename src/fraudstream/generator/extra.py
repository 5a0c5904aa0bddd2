"""Opt-in additions to the handbook simulator: two more fraud scenarios and richer fields.

Nothing here runs unless asked for; with every option off :func:`apply_extras` returns the
handbook transactions unchanged, so the handbook's published figures still hold.

Fraud scenarios (rows are *added*, never altered; all have ``TX_FRAUD = 1``):

* **Scenario 4 - card testing.** A stolen card is first probed with a burst of 3 to 8 tiny
  amounts (0.50 to 2.00) at one e-commerce terminal, 5 to 90 seconds apart, then used 2 to 30
  minutes later for one large purchase (250 to 1500) at another e-commerce terminal. The number
  of bursts is Poisson with mean ``card_testing_per_day * nb_days``; card, day and start time
  are uniform.
* **Scenario 5 - account takeover.** A fraudster who took over an account makes 4 to 10
  transactions, 30 seconds to 10 minutes apart (high velocity), at terminals at least
  ``takeover_min_distance`` grid units from the customer's home (the farthest tenth of the
  terminals when none is that far), on a channel the customer never used in the simulated
  history (else their least used one), for 1.5 to 5 times the customer's mean amount. The number
  of takeovers is Poisson with mean ``account_takeover_per_day * nb_days``.

Injected rows get the handbook's columns (``TX_DATETIME``, ``TX_TIME_SECONDS`` and
``TX_TIME_DAYS`` consistent with the simulation start) and every row is re-sorted by
``TX_DATETIME`` (stable: handbook rows first on ties). Handbook rows keep their
``TRANSACTION_ID``; injected rows are numbered after the largest one, in time order.

Extra fields (``extra_fields=True``), derived from the terminal of each transaction:

* ``CHANNEL``: ``pos`` (70 %), ``ecom`` (22 %) or ``atm`` (8 %), drawn once per terminal;
* ``MERCHANT_CATEGORY``: a four-digit MCC-like string consistent with the channel (``6011`` for
  ATMs), drawn once per terminal;
* ``LAT`` / ``LON``: the 100 x 100 grid mapped linearly onto latitude 36..60 and longitude
  -10..30 (a Europe-sized box): ``lat = 36 + 0.24 * y``, ``lon = -10 + 0.4 * x``, rounded to
  6 decimals;
* ``COUNTRY``: an ISO-like code from a fixed 4 x 4 partition of the grid (synthetic geography,
  not real borders).

Randomness comes from NumPy ``Generator`` objects seeded with ``[seed, k]`` (a different ``k``
per purpose: terminal attributes, card testing, account takeover), so the result depends only on
``seed`` and the inputs, and enabling one scenario does not change what another one draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "CHANNELS",
    "SCENARIO_ACCOUNT_TAKEOVER",
    "SCENARIO_CARD_TESTING",
    "ExtraOptions",
    "account_takeover_transactions",
    "add_extra_fields",
    "apply_extras",
    "card_testing_transactions",
    "grid_to_country",
    "grid_to_lat_lon",
    "terminal_attributes",
]

SCENARIO_CARD_TESTING = 4
SCENARIO_ACCOUNT_TAKEOVER = 5

CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm")
_CHANNEL_WEIGHTS = np.array([0.70, 0.22, 0.08])
_MCC_BY_CHANNEL: dict[str, tuple[str, ...]] = {
    # grocery, restaurants, fuel, department stores, pharmacies, electronics, clothing, misc.
    "pos": ("5411", "5812", "5541", "5311", "5912", "5732", "5651", "5999"),
    # books, electronics, travel agencies, digital goods, misc. retail, catalogue merchants
    "ecom": ("5942", "5732", "4722", "5818", "5999", "5964"),
    "atm": ("6011",),
}
# South to north rows, west to east columns of the 100 x 100 grid.
_COUNTRY_GRID: tuple[tuple[str, ...], ...] = (
    ("PT", "ES", "IT", "GR"),
    ("FR", "CH", "AT", "HU"),
    ("BE", "DE", "CZ", "PL"),
    ("IE", "NL", "DK", "LT"),
)
_SECONDS_PER_DAY = 86400
_EXTRA_COLUMNS = ("CHANNEL", "MERCHANT_CATEGORY", "COUNTRY", "LAT", "LON")

# Sub-seeds of the Generators (``default_rng([seed, k])``).
_STREAM_TERMINALS = 0
_STREAM_CARD_TESTING = 1
_STREAM_TAKEOVER = 2


@dataclass(frozen=True)
class ExtraOptions:
    """Which additions to apply, and their parameters.

    Attributes:
        card_testing: inject scenario 4 (card testing) frauds.
        account_takeover: inject scenario 5 (account takeover) frauds.
        extra_fields: add ``CHANNEL, MERCHANT_CATEGORY, COUNTRY, LAT, LON`` columns.
        seed: seed of every random draw made here (the handbook part has its own seeds).
        card_testing_per_day: mean number of card-testing bursts per simulated day.
        account_takeover_per_day: mean number of account takeovers per simulated day.
        takeover_min_distance: minimum grid distance of account-takeover terminals.
    """

    card_testing: bool = False
    account_takeover: bool = False
    extra_fields: bool = False
    seed: int = 42
    card_testing_per_day: float = 2.0
    account_takeover_per_day: float = 1.0
    takeover_min_distance: float = 50.0

    @property
    def any(self) -> bool:
        """Whether at least one addition is enabled."""
        return self.card_testing or self.account_takeover or self.extra_fields


def grid_to_lat_lon(
    x: npt.ArrayLike, y: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Map grid coordinates (0..100) to ``(latitude, longitude)`` in degrees (6 decimals)."""
    lat = np.round(36.0 + 0.24 * np.asarray(y, dtype=np.float64), 6)
    lon = np.round(-10.0 + 0.4 * np.asarray(x, dtype=np.float64), 6)
    return lat, lon


def grid_to_country(x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """Country code of grid coordinates, from a fixed 4 x 4 partition of the 100 x 100 grid."""
    col = np.clip((np.asarray(x, dtype=np.float64) // 25).astype(np.int64), 0, 3)
    row = np.clip((np.asarray(y, dtype=np.float64) // 25).astype(np.int64), 0, 3)
    table = np.array(_COUNTRY_GRID)
    return table[row, col]


def terminal_attributes(terminals_df: pd.DataFrame, seed: int = 42) -> pd.DataFrame:
    """Channel, merchant category, country and coordinates of every terminal.

    Args:
        terminals_df: the handbook terminal table (``TERMINAL_ID, x_terminal_id,
            y_terminal_id``).
        seed: seed of the channel and merchant-category draws.

    Returns:
        A frame indexed by ``TERMINAL_ID`` with columns ``CHANNEL, MERCHANT_CATEGORY, COUNTRY,
        LAT, LON``.
    """
    rng = np.random.default_rng([seed, _STREAM_TERMINALS])
    n = len(terminals_df)
    channel_codes = rng.choice(len(CHANNELS), size=n, p=_CHANNEL_WEIGHTS)
    picks = rng.random(n)
    channels = np.array(CHANNELS, dtype=object)[channel_codes]
    mcc = np.empty(n, dtype=object)
    for code, name in enumerate(CHANNELS):
        choices = np.array(_MCC_BY_CHANNEL[name], dtype=object)
        rows = channel_codes == code
        mcc[rows] = choices[(picks[rows] * len(choices)).astype(np.int64)]
    x = terminals_df["x_terminal_id"].to_numpy(dtype=np.float64)
    y = terminals_df["y_terminal_id"].to_numpy(dtype=np.float64)
    lat, lon = grid_to_lat_lon(x, y)
    return pd.DataFrame(
        {
            "CHANNEL": channels,
            "MERCHANT_CATEGORY": mcc,
            "COUNTRY": grid_to_country(x, y).astype(object),
            "LAT": lat,
            "LON": lon,
        },
        index=pd.Index(terminals_df["TERMINAL_ID"].to_numpy(), name="TERMINAL_ID"),
    )


def add_extra_fields(
    transactions_df: pd.DataFrame, terminals_df: pd.DataFrame, seed: int = 42
) -> pd.DataFrame:
    """Copy of the transactions with the terminal's ``CHANNEL, MERCHANT_CATEGORY, COUNTRY, LAT,
    LON`` appended (see :func:`terminal_attributes`)."""
    attributes = terminal_attributes(terminals_df, seed)
    result = transactions_df.drop(columns=[c for c in _EXTRA_COLUMNS if c in transactions_df.columns])
    positions = attributes.index.get_indexer(result["TERMINAL_ID"].to_numpy())
    if (positions < 0).any():
        raise ValueError("transactions refer to terminals missing from the terminal table")
    for column in _EXTRA_COLUMNS:
        result[column] = attributes[column].to_numpy()[positions]
    return result


def _simulation_frame(transactions_df: pd.DataFrame) -> tuple[pd.Timestamp, int]:
    """Start timestamp (day 0 midnight) and number of days covered by the transactions."""
    first = transactions_df.iloc[0]
    origin = pd.Timestamp(first["TX_DATETIME"]) - pd.Timedelta(seconds=int(first["TX_TIME_SECONDS"]))
    return origin, int(transactions_df["TX_TIME_DAYS"].max()) + 1


def _rows(
    origin: pd.Timestamp,
    seconds: list[int],
    customers: list[int],
    terminals: list[int],
    amounts: list[float],
    scenario: int,
) -> pd.DataFrame:
    """Injected fraud rows in the handbook's layout (without ``TRANSACTION_ID``)."""
    secs = np.asarray(seconds, dtype=np.int64)
    origin_ns = np.datetime64(origin.to_datetime64(), "ns")
    return pd.DataFrame(
        {
            "TX_DATETIME": origin_ns + secs.astype("timedelta64[s]").astype("timedelta64[ns]"),
            "CUSTOMER_ID": np.asarray(customers, dtype=np.int64),
            "TERMINAL_ID": np.asarray(terminals, dtype=np.int64),
            "TX_AMOUNT": np.round(np.asarray(amounts, dtype=np.float64), 2),
            "TX_TIME_SECONDS": secs,
            "TX_TIME_DAYS": secs // _SECONDS_PER_DAY,
            "TX_FRAUD": np.ones(len(secs), dtype=np.int64),
            "TX_FRAUD_SCENARIO": np.full(len(secs), scenario, dtype=np.int64),
        }
    )


def card_testing_transactions(
    customers_df: pd.DataFrame,
    terminals_df: pd.DataFrame,
    transactions_df: pd.DataFrame,
    *,
    seed: int = 42,
    per_day: float = 2.0,
) -> pd.DataFrame:
    """Scenario 4 rows: bursts of tiny test amounts at one terminal, then a large purchase.

    Args:
        customers_df: customer table (``CUSTOMER_ID``).
        terminals_df: terminal table (``TERMINAL_ID`` and coordinates).
        transactions_df: handbook transactions; define the simulated period.
        seed: seed of the draws.
        per_day: mean number of bursts per day.

    Returns:
        The injected rows (handbook columns without ``TRANSACTION_ID``), in generation order.
    """
    if len(transactions_df) == 0 or len(terminals_df) == 0 or len(customers_df) == 0:
        return _rows(pd.Timestamp(0), [], [], [], [], SCENARIO_CARD_TESTING)
    origin, nb_days = _simulation_frame(transactions_df)
    rng = np.random.default_rng([seed, _STREAM_CARD_TESTING])
    channels = terminal_attributes(terminals_df, seed)["CHANNEL"]
    ecom = channels.index[channels.to_numpy() == "ecom"].to_numpy()
    pool = ecom if len(ecom) >= 2 else channels.index.to_numpy()
    customer_ids = customers_df["CUSTOMER_ID"].to_numpy()
    seconds: list[int] = []
    customers: list[int] = []
    terminals: list[int] = []
    amounts: list[float] = []
    for _ in range(int(rng.poisson(per_day * nb_days))):
        customer = int(rng.choice(customer_ids))
        day = int(rng.integers(nb_days))
        start = int(rng.integers(0, _SECONDS_PER_DAY - 3600))
        test_terminal, buy_terminal = (int(t) for t in rng.choice(pool, size=2, replace=False))
        n_tests = int(rng.integers(3, 9))
        offsets = np.cumsum(rng.integers(5, 91, size=n_tests)) - 5
        test_amounts = rng.uniform(0.5, 2.0, size=n_tests)
        buy_delay = int(rng.integers(120, 1801))
        buy_amount = float(rng.uniform(250.0, 1500.0))
        base = day * _SECONDS_PER_DAY + start
        seconds += [base + int(o) for o in offsets] + [base + int(offsets[-1]) + buy_delay]
        customers += [customer] * (n_tests + 1)
        terminals += [test_terminal] * n_tests + [buy_terminal]
        amounts += test_amounts.tolist() + [buy_amount]
    return _rows(origin, seconds, customers, terminals, amounts, SCENARIO_CARD_TESTING)


def account_takeover_transactions(
    customers_df: pd.DataFrame,
    terminals_df: pd.DataFrame,
    transactions_df: pd.DataFrame,
    *,
    seed: int = 42,
    per_day: float = 1.0,
    min_distance: float = 50.0,
) -> pd.DataFrame:
    """Scenario 5 rows: high-velocity spending at far-away terminals on a new channel.

    Args:
        customers_df: customer table (``CUSTOMER_ID, x_customer_id, y_customer_id,
            mean_amount``).
        terminals_df: terminal table (``TERMINAL_ID, x_terminal_id, y_terminal_id``).
        transactions_df: handbook transactions; define the period and the customers' channels.
        seed: seed of the draws.
        per_day: mean number of takeovers per day.
        min_distance: minimum grid distance between the customer and the terminals used.

    Returns:
        The injected rows (handbook columns without ``TRANSACTION_ID``), in generation order.
    """
    if len(transactions_df) == 0 or len(terminals_df) == 0 or len(customers_df) == 0:
        return _rows(pd.Timestamp(0), [], [], [], [], SCENARIO_ACCOUNT_TAKEOVER)
    origin, nb_days = _simulation_frame(transactions_df)
    rng = np.random.default_rng([seed, _STREAM_TAKEOVER])
    channels = terminal_attributes(terminals_df, seed)["CHANNEL"]
    terminal_ids = channels.index.to_numpy()
    terminal_channels = channels.to_numpy()
    terminal_xy = terminals_df[["x_terminal_id", "y_terminal_id"]].to_numpy(dtype=np.float64)

    # channel usage of every customer over the simulated history
    usage = (
        pd.DataFrame(
            {
                "CUSTOMER_ID": transactions_df["CUSTOMER_ID"].to_numpy(),
                "CHANNEL": terminal_channels[
                    channels.index.get_indexer(transactions_df["TERMINAL_ID"].to_numpy())
                ],
            }
        )
        .groupby(["CUSTOMER_ID", "CHANNEL"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(CHANNELS), fill_value=0)
    )
    active = usage.index.to_numpy()
    profiles = customers_df.set_index("CUSTOMER_ID")

    seconds: list[int] = []
    customers: list[int] = []
    terminals: list[int] = []
    amounts: list[float] = []
    for _ in range(int(rng.poisson(per_day * nb_days))):
        customer = int(rng.choice(active))
        day = int(rng.integers(nb_days))
        start = int(rng.integers(0, _SECONDS_PER_DAY - 7200))
        n_tx = int(rng.integers(4, 11))
        offsets = np.cumsum(rng.integers(30, 601, size=n_tx)) - 30
        factors = rng.uniform(1.5, 5.0, size=n_tx)
        picks = rng.random(n_tx)

        profile = profiles.loc[customer]
        home = np.array([profile["x_customer_id"], profile["y_customer_id"]], dtype=np.float64)
        distance = np.sqrt(np.square(terminal_xy - home).sum(axis=1))
        far = distance >= min_distance
        if not far.any():
            far = distance >= np.quantile(distance, 0.9)
        counts = usage.loc[customer].to_numpy()
        channel = CHANNELS[int(np.argmin(counts))]  # first never-used channel, else least used
        candidates = terminal_ids[far & (terminal_channels == channel)]
        if len(candidates) == 0:
            candidates = terminal_ids[far]
        chosen = candidates[(picks * len(candidates)).astype(np.int64)]

        base = day * _SECONDS_PER_DAY + start
        seconds += [base + int(o) for o in offsets]
        customers += [customer] * n_tx
        terminals += [int(t) for t in chosen]
        amounts += (factors * float(profile["mean_amount"])).tolist()
    return _rows(origin, seconds, customers, terminals, amounts, SCENARIO_ACCOUNT_TAKEOVER)


def apply_extras(
    customers_df: pd.DataFrame,
    terminals_df: pd.DataFrame,
    transactions_df: pd.DataFrame,
    options: ExtraOptions,
) -> pd.DataFrame:
    """Apply the enabled additions to labelled handbook transactions.

    Args:
        customers_df: customer table from :func:`~fraudstream.generator.handbook.generate_dataset`.
        terminals_df: terminal table from the same call.
        transactions_df: labelled transactions from the same call (``TX_FRAUD`` columns present).
        options: what to add.

    Returns:
        ``transactions_df`` itself when nothing is enabled; otherwise a new frame, sorted by
        ``TX_DATETIME``, with the injected rows and/or the extra columns.
    """
    if not options.any:
        return transactions_df
    result = transactions_df
    injected: list[pd.DataFrame] = []
    if options.card_testing:
        injected.append(
            card_testing_transactions(
                customers_df,
                terminals_df,
                transactions_df,
                seed=options.seed,
                per_day=options.card_testing_per_day,
            )
        )
    if options.account_takeover:
        injected.append(
            account_takeover_transactions(
                customers_df,
                terminals_df,
                transactions_df,
                seed=options.seed,
                per_day=options.account_takeover_per_day,
                min_distance=options.takeover_min_distance,
            )
        )
    injected = [frame for frame in injected if len(frame) > 0]
    if injected:
        new_rows = pd.concat(injected, ignore_index=True)
        new_rows = new_rows.sort_values("TX_DATETIME", kind="stable", ignore_index=True)
        first_id = int(transactions_df["TRANSACTION_ID"].max()) + 1
        new_rows.insert(0, "TRANSACTION_ID", np.arange(first_id, first_id + len(new_rows), dtype=np.int64))
        result = pd.concat([transactions_df, new_rows[transactions_df.columns]], ignore_index=True)
        result = result.sort_values("TX_DATETIME", kind="stable", ignore_index=True)
    if options.extra_fields:
        result = add_extra_fields(result, terminals_df, options.seed)
    return result
