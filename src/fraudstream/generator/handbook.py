"""Fast, bit-for-bit re-implementation of the Fraud Detection Handbook transaction simulator.

Source: Le Borgne, Siblini, Lebichot, Bontempi, *Reproducible Machine Learning for Credit Card
Fraud Detection - Practical Handbook*, chapter 3 "Transaction data simulator"
(``Chapter_3_GettingStarted/SimulatedDataset.ipynb`` of the
``Fraud-Detection-Handbook/fraud-detection-handbook`` repository).

Every random draw of the original code is reproduced, in the same order and from the same
generators:

* customer profiles: legacy ``RandomState(0)`` (the notebook calls ``np.random.seed(0)``),
  per customer ``x, y ~ U(0, 100)``, ``mean_amount ~ U(5, 100)``, ``std = mean / 2``,
  ``mean_nb_tx_per_day ~ U(0, 4)``;
* terminal profiles: ``RandomState(1)``, ``x, y ~ U(0, 100)``;
* a customer may use the terminals whose Euclidean distance is strictly below ``r``
  (same floating-point operations as the notebook, evaluated as a chunked matrix);
* per customer, Python's ``random`` and NumPy's legacy generator are both seeded with the
  customer id; for each day a Poisson number of transactions, for each transaction a time of day
  ``int(N(43200, 20000))`` kept only when ``0 < t < 86400``, then an amount ``N(mean, std)``
  (a negative amount is redrawn as ``U(0, 2 * mean)``), rounded to cents, then
  ``random.choice`` of the available terminals (no transaction when there is none);
* transactions are concatenated customer by customer, sorted with the same pandas call
  (``sort_values("TX_DATETIME")``, whose tie order is part of the result) and numbered
  ``TRANSACTION_ID = 0..n-1``;
* :func:`add_frauds` applies the three fraud scenarios exactly as the notebook: (1) amount
  above 220, (2) every day ``d`` two terminals drawn with
  ``TERMINAL_ID.sample(n=2, random_state=d)`` are compromised for 28 days, (3) every day three
  customers drawn with ``CUSTOMER_ID.sample(n=3, random_state=d)`` have one third of their
  transactions of the next 14 days (``random.seed(d); random.sample(...)``) multiplied by 5.

Differences from the notebook that do not change any value: no global random state is touched
(private ``random.Random`` / ``numpy.random.RandomState`` instances seeded identically are used),
pandas is kept out of the inner loops, the fraud scenarios are vectorised, :func:`add_frauds`
returns a new frame instead of modifying its argument, and ``TX_DATETIME`` is
``datetime64[ns]`` whatever the pandas default resolution.

With the notebook parameters (5000 customers, 10000 terminals, 183 days from 2018-04-01,
``r=5``) the result has 1,754,155 transactions and 14,681 frauds (973 / 9,077 / 4,631 for
scenarios 1 / 2 / 3), as published in the handbook.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "TRANSACTION_COLUMNS",
    "add_frauds",
    "generate_customer_profiles_table",
    "generate_dataset",
    "generate_terminal_profiles_table",
    "generate_transactions",
    "terminals_within_radius",
]

#: Columns of the transactions table, in the handbook's order.
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)

_SECONDS_PER_DAY = 86400
# Number of (customer, terminal) pairs evaluated at once in the distance matrix.
_DISTANCE_CHUNK_PAIRS = 2_000_000


def generate_customer_profiles_table(n_customers: int, random_state: int = 0) -> pd.DataFrame:
    """Draw the customer profiles exactly as the handbook does.

    Args:
        n_customers: number of customers; their ids are ``0..n_customers-1``.
        random_state: seed of the legacy NumPy generator (the handbook uses 0).

    Returns:
        A frame with columns ``CUSTOMER_ID, x_customer_id, y_customer_id, mean_amount,
        std_amount, mean_nb_tx_per_day``.
    """
    rs = np.random.RandomState(random_state)
    # Row-major order of a (n, 4) draw is the order of the handbook's scalar draws, and the
    # legacy uniform computes ``low + (high - low) * u`` in both cases.
    draws = rs.uniform(
        low=np.array([0.0, 0.0, 5.0, 0.0]),
        high=np.array([100.0, 100.0, 100.0, 4.0]),
        size=(n_customers, 4),
    )
    return pd.DataFrame(
        {
            "CUSTOMER_ID": np.arange(n_customers, dtype=np.int64),
            "x_customer_id": draws[:, 0],
            "y_customer_id": draws[:, 1],
            "mean_amount": draws[:, 2],
            "std_amount": draws[:, 2] / 2,
            "mean_nb_tx_per_day": draws[:, 3],
        }
    )


def generate_terminal_profiles_table(n_terminals: int, random_state: int = 1) -> pd.DataFrame:
    """Draw the terminal profiles exactly as the handbook does.

    Args:
        n_terminals: number of terminals; their ids are ``0..n_terminals-1``.
        random_state: seed of the legacy NumPy generator (``generate_dataset`` of the handbook
            uses 1; the notebook's function default is 0).

    Returns:
        A frame with columns ``TERMINAL_ID, x_terminal_id, y_terminal_id``.
    """
    rs = np.random.RandomState(random_state)
    draws = rs.uniform(0.0, 100.0, size=(n_terminals, 2))
    return pd.DataFrame(
        {
            "TERMINAL_ID": np.arange(n_terminals, dtype=np.int64),
            "x_terminal_id": draws[:, 0],
            "y_terminal_id": draws[:, 1],
        }
    )


def terminals_within_radius(
    x_y_customers: npt.ArrayLike, x_y_terminals: npt.ArrayLike, r: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Indices of the terminals strictly closer than ``r`` to each customer.

    The distance is computed with the handbook's operations
    (``sqrt(square(dx) + square(dy)) < r``), so borderline cases are decided identically.

    Args:
        x_y_customers: ``(n_customers, 2)`` customer locations.
        x_y_terminals: ``(n_terminals, 2)`` terminal locations.
        r: radius.

    Returns:
        ``(offsets, indices)`` in compressed-row form: the terminals of customer ``i`` are
        ``indices[offsets[i]:offsets[i + 1]]``, in increasing order.
    """
    customers = np.asarray(x_y_customers, dtype=float).reshape(-1, 2)
    terminals = np.asarray(x_y_terminals, dtype=float).reshape(-1, 2)
    n_customers, n_terminals = len(customers), len(terminals)
    counts = np.zeros(n_customers, dtype=np.int64)
    parts: list[npt.NDArray[np.int64]] = []
    step = max(1, _DISTANCE_CHUNK_PAIRS // max(1, n_terminals))
    for start in range(0, n_customers, step):
        block = customers[start : start + step]
        squared = np.square(block[:, None, :] - terminals[None, :, :])
        within = np.sqrt(squared[..., 0] + squared[..., 1]) < r
        counts[start : start + len(block)] = within.sum(axis=1)
        parts.append(np.nonzero(within)[1].astype(np.int64))
    offsets = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return offsets, indices


def _simulate_customers(
    customer_ids: Sequence[int],
    mean_nb_tx_per_day: Sequence[float],
    mean_amounts: Sequence[float],
    std_amounts: Sequence[float],
    terminal_lists: Sequence[list[int]],
    nb_days: int,
) -> tuple[list[int], list[int], list[int], list[int], list[float]]:
    """The handbook's ``generate_transactions_table`` loop for many customers, without pandas.

    Returns plain lists (seconds, days, customer ids, terminal ids, unrounded amounts), customer
    after customer, in the handbook's generation order.
    """
    seconds: list[int] = []
    days: list[int] = []
    customers: list[int] = []
    terminal_out: list[int] = []
    amounts: list[float] = []
    add_second, add_day, add_customer = seconds.append, days.append, customers.append
    add_terminal, add_amount = terminal_out.append, amounts.append
    for customer_id, lam, mean, std, available in zip(
        customer_ids, mean_nb_tx_per_day, mean_amounts, std_amounts, terminal_lists, strict=True
    ):
        py_random = random.Random(customer_id)
        np_random = np.random.RandomState(customer_id)
        poisson, normal, uniform = np_random.poisson, np_random.normal, np_random.uniform
        choice = py_random.choice
        twice_mean = mean * 2
        for day in range(nb_days):
            nb_tx = poisson(lam)
            if nb_tx <= 0:
                continue
            day_start = day * _SECONDS_PER_DAY
            for _ in range(nb_tx):
                time_tx = int(normal(43200.0, 20000))
                if 0 < time_tx < _SECONDS_PER_DAY:
                    amount = normal(mean, std)
                    if amount < 0:
                        amount = uniform(0, twice_mean)
                    if available:
                        add_terminal(choice(available))
                        add_second(time_tx + day_start)
                        add_day(day)
                        add_customer(customer_id)
                        add_amount(amount)
    return seconds, days, customers, terminal_out, amounts


def generate_transactions(
    customer_profiles: pd.DataFrame,
    nb_days: int,
    start_date: str = "2018-04-01",
) -> pd.DataFrame:
    """Simulate the genuine transactions of every customer, sorted as in the handbook.

    Args:
        customer_profiles: customer table with the ``available_terminals`` column (lists of
            terminal ids), as returned in the first element of :func:`generate_dataset`.
        nb_days: number of simulated days.
        start_date: date of day 0 (midnight, naive timestamps).

    Returns:
        Columns ``TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT,
        TX_TIME_SECONDS, TX_TIME_DAYS`` sorted by ``TX_DATETIME``; no fraud columns yet.
    """
    # The handbook's groupby("CUSTOMER_ID").apply visits customers in increasing id order.
    profiles = customer_profiles.sort_values("CUSTOMER_ID", kind="stable")
    seconds, days, customers, terminals, amounts = _simulate_customers(
        [int(c) for c in profiles["CUSTOMER_ID"]],
        profiles["mean_nb_tx_per_day"].astype(float).tolist(),
        profiles["mean_amount"].astype(float).tolist(),
        profiles["std_amount"].astype(float).tolist(),
        [[int(t) for t in terms] for terms in profiles["available_terminals"]],
        nb_days,
    )
    seconds_arr = np.asarray(seconds, dtype=np.int64)
    origin = np.datetime64(pd.Timestamp(start_date).to_datetime64(), "ns")
    frame = pd.DataFrame(
        {
            "TX_DATETIME": origin + seconds_arr.astype("timedelta64[s]").astype("timedelta64[ns]"),
            "CUSTOMER_ID": np.asarray(customers, dtype=np.int64),
            "TERMINAL_ID": np.asarray(terminals, dtype=np.int64),
            "TX_AMOUNT": np.round(np.asarray(amounts, dtype=np.float64), decimals=2),
            "TX_TIME_SECONDS": seconds_arr,
            "TX_TIME_DAYS": np.asarray(days, dtype=np.int64),
        }
    )
    # Same pandas call as the handbook: the default (unstable) sort decides the order of ties.
    frame = frame.sort_values("TX_DATETIME")
    frame = frame.reset_index(drop=True)
    frame.insert(0, "TRANSACTION_ID", np.arange(len(frame), dtype=np.int64))
    return frame


def generate_dataset(
    n_customers: int = 5000,
    n_terminals: int = 10000,
    nb_days: int = 183,
    start_date: str = "2018-04-01",
    r: float = 5,
    *,
    with_frauds: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Generate the handbook's customers, terminals and labelled transactions.

    Args:
        n_customers: number of customers.
        n_terminals: number of terminals.
        nb_days: number of simulated days.
        start_date: date of day 0.
        r: radius around a customer within which terminals are used.
        with_frauds: apply :func:`add_frauds` (the handbook does it as a separate step);
            when ``False`` the transactions have no ``TX_FRAUD*`` columns.

    Returns:
        ``(customer_profiles, terminal_profiles, transactions)``. The customer table has the
        handbook's extra ``available_terminals`` (lists) and ``nb_terminals`` columns; the
        transactions have the columns of :data:`TRANSACTION_COLUMNS`.
    """
    customers = generate_customer_profiles_table(n_customers, random_state=0)
    terminals = generate_terminal_profiles_table(n_terminals, random_state=1)
    offsets, indices = terminals_within_radius(
        customers[["x_customer_id", "y_customer_id"]].to_numpy(dtype=float),
        terminals[["x_terminal_id", "y_terminal_id"]].to_numpy(dtype=float),
        r,
    )
    flat = indices.tolist()
    bounds = offsets.tolist()
    customers["available_terminals"] = pd.Series(
        [flat[bounds[i] : bounds[i + 1]] for i in range(n_customers)],
        index=customers.index,
        dtype=object,
    )
    customers["nb_terminals"] = np.diff(offsets)
    transactions = generate_transactions(customers, nb_days=nb_days, start_date=start_date)
    if with_frauds:
        transactions = add_frauds(customers, terminals, transactions)
    return customers, terminals, transactions


def _compromised_mask(
    keys: npt.NDArray[np.generic],
    days: npt.NDArray[np.int64],
    compromised: list[tuple[npt.NDArray[np.generic], int]],
    window: int,
) -> npt.NDArray[np.bool_]:
    """Rows whose key was compromised on a day ``d`` with ``d <= day < d + window``."""
    mask = np.zeros(len(keys), dtype=bool)
    if not compromised or len(keys) == 0:
        return mask
    all_keys = np.unique(np.concatenate([np.asarray(values) for values, _ in compromised]))
    if len(all_keys) == 0:
        return mask
    width = int(days.max()) + 1
    active = np.zeros((len(all_keys), width), dtype=bool)
    for values, day in compromised:
        rows = np.searchsorted(all_keys, np.asarray(values))
        active[rows, day : day + window] = True
    rows = np.searchsorted(all_keys, keys)
    clipped = np.minimum(rows, len(all_keys) - 1)
    found = all_keys[clipped] == keys
    mask[found] = active[clipped[found], days[found]]
    return mask


def add_frauds(
    customer_profiles_table: pd.DataFrame,
    terminal_profiles_table: pd.DataFrame,
    transactions_df: pd.DataFrame,
) -> pd.DataFrame:
    """Label (and, for scenario 3, alter) transactions with the handbook's fraud scenarios.

    Scenario 1: every amount above 220 is a fraud. Scenario 2: for each day ``d`` in
    ``0..max(TX_TIME_DAYS)-1``, ``TERMINAL_ID.sample(n=2, random_state=d)`` are compromised and
    all their transactions of days ``d..d+27`` are frauds. Scenario 3: for each such day,
    ``CUSTOMER_ID.sample(n=3, random_state=d)`` are compromised; among their transactions of
    days ``d..d+13`` (in row order) ``random.seed(d); random.sample(rows, k=n // 3)`` become
    frauds and their amount is multiplied by 5 (once per selection, as the handbook's loop).
    Later scenarios overwrite the scenario id of earlier ones.

    The rows are expected to be in the handbook's order with a unique index (as produced by
    :func:`generate_transactions`); the row position plays the role of the handbook's index.

    Args:
        customer_profiles_table: the customer table (``CUSTOMER_ID`` is sampled).
        terminal_profiles_table: the terminal table (``TERMINAL_ID`` is sampled).
        transactions_df: the transactions; not modified.

    Returns:
        A copy of ``transactions_df`` with ``TX_FRAUD`` and ``TX_FRAUD_SCENARIO`` (int64) and the
        scenario-3 amounts.
    """
    result = transactions_df.copy()
    n = len(result)
    amounts = result["TX_AMOUNT"].to_numpy(dtype=np.float64, copy=True)
    fraud = np.zeros(n, dtype=np.int64)
    scenario = np.zeros(n, dtype=np.int64)

    # Scenario 1
    high = amounts > 220
    fraud[high] = 1
    scenario[high] = 1

    if n > 0:
        days = result["TX_TIME_DAYS"].to_numpy(dtype=np.int64)
        last_day = int(days.max())  # the handbook loops over range(max), excluding the max

        # Scenario 2
        terminal_ids = terminal_profiles_table["TERMINAL_ID"]
        compromised_terminals = [
            (terminal_ids.sample(n=2, random_state=day).to_numpy(), day) for day in range(last_day)
        ]
        tx_terminals = result["TERMINAL_ID"].to_numpy()
        stolen = _compromised_mask(tx_terminals, days, compromised_terminals, window=28)
        fraud[stolen] = 1
        scenario[stolen] = 2

        # Scenario 3
        customer_ids = customer_profiles_table["CUSTOMER_ID"]
        tx_customers = result["CUSTOMER_ID"].to_numpy()
        order = np.argsort(tx_customers, kind="stable")
        sorted_customers = tx_customers[order]
        times_selected = np.zeros(n, dtype=np.int64)
        for day in range(last_day):
            victims = customer_ids.sample(n=3, random_state=day).to_numpy()
            lo = np.searchsorted(sorted_customers, victims, side="left")
            hi = np.searchsorted(sorted_customers, victims, side="right")
            rows = np.sort(np.concatenate([order[a:b] for a, b in zip(lo, hi, strict=True)]))
            rows = rows[(days[rows] >= day) & (days[rows] < day + 14)]
            chosen = random.Random(day).sample(rows.tolist(), k=int(len(rows) / 3))
            times_selected[chosen] += 1
        for repeat in range(int(times_selected.max(initial=0))):
            amounts[times_selected > repeat] *= 5
        selected = times_selected > 0
        fraud[selected] = 1
        scenario[selected] = 3

    result["TX_AMOUNT"] = amounts
    result["TX_FRAUD"] = fraud
    result["TX_FRAUD_SCENARIO"] = scenario
    return result
