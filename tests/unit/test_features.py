"""The streaming features against the offline pandas reference, and their state semantics.

The reference (``tests.reference.handbook_features``) transcribes the Fraud Detection Handbook's
feature code; the streaming side is driven by ``tests.reference.stream`` the way the detector
runs it (batches per partition, a reader feeding the global terminal state with every
transaction and every label, labels published 7 days after their transaction). Every feature of
every transaction must agree within 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from fraudstream.contracts.batch import EPOCH_2000_MS, TxBatch
from fraudstream.features import (
    FEATURE_NAMES,
    HANDBOOK_FEATURES,
    CustomerState,
    TerminalState,
    compute_features,
    feature_matrix,
)
from fraudstream.features.customer import CUSTOMER_FEATURES
from fraudstream.features.definitions import time_features
from fraudstream.generator.handbook import generate_dataset
from tests.reference.handbook_features import REFERENCE_FEATURE_NAMES, reference_features
from tests.reference.stream import (
    Labels,
    handbook_labels,
    partition_of,
    stream_features,
    tx_batch_from_transactions,
)

TOLERANCE = 1e-6
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


@dataclass
class Dataset:
    transactions: pd.DataFrame
    batch: TxBatch
    labels: Labels
    reference: pd.DataFrame  # indexed by the string transaction id


def _dataset(n_customers: int, n_terminals: int, nb_days: int) -> Dataset:
    _, _, transactions = generate_dataset(n_customers, n_terminals, nb_days, "2018-04-01", 5)
    batch = tx_batch_from_transactions(transactions)
    labels = handbook_labels(batch, transactions["TX_FRAUD"].to_numpy() != 0)
    reference = reference_features(transactions)
    reference.index = reference.index.astype(str)
    return Dataset(transactions, batch, labels, reference)


@pytest.fixture(scope="module")
def small() -> Dataset:
    return _dataset(200, 400, 60)


def assert_same_features(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == FEATURE_NAMES
    assert actual.index.equals(expected.index)
    for name in FEATURE_NAMES:
        got = actual[name].to_numpy()
        want = expected[name].to_numpy()
        assert np.isfinite(got).all(), name
        bad = np.flatnonzero(~(np.abs(got - want) <= TOLERANCE))
        assert bad.size == 0, (
            f"{name}: {bad.size} rows differ, e.g. transaction {actual.index[bad[0]]}: "
            f"{got[bad[0]]} != {want[bad[0]]}"
        )


# ------------------------------------------------------------------------------- names


def test_feature_names_match_the_reference_and_the_handbook() -> None:
    assert FEATURE_NAMES == REFERENCE_FEATURE_NAMES
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == 23
    # The handbook's baseline models use these 15, in this order.
    assert HANDBOOK_FEATURES == [
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
    ]
    assert FEATURE_NAMES[:15] == HANDBOOK_FEATURES


def test_reference_vectorised_path_equals_the_literal_handbook_functions(small: Dataset) -> None:
    literal = reference_features(small.transactions, literal=True)
    literal.index = literal.index.astype(str)
    pd.testing.assert_frame_equal(literal, small.reference, check_exact=False, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------- streaming vs reference


@pytest.mark.parametrize(
    "batch_sizes",
    [(1000,), (1, 7, 1000), (1, 2, 3, 5, 7, 11, 97), (10**9,)],
    ids=["1000", "1-7-1000", "tiny", "all"],
)
def test_streaming_features_equal_the_reference(small: Dataset, batch_sizes: tuple[int, ...]) -> None:
    result = stream_features(small.batch, small.labels, batch_sizes=batch_sizes)
    assert_same_features(result, small.reference)


def test_three_partitions_sharing_one_terminal_state_give_the_same_features(small: Dataset) -> None:
    partitions = partition_of(small.batch.customer_id, 3)
    assert sorted(np.unique(partitions).tolist()) == [0, 1, 2]
    result = stream_features(small.batch, small.labels, batch_sizes=(1, 7, 1000), n_partitions=3)
    assert_same_features(result, small.reference)


def test_reader_running_ahead_does_not_change_the_features(small: Dataset) -> None:
    result = stream_features(small.batch, small.labels, batch_sizes=(500,), reader_lead_ms=2 * DAY)
    assert_same_features(result, small.reference)


def test_handbook_dataset_5000_customers_60_days() -> None:
    data = _dataset(5000, 10000, 60)
    assert len(data.batch) > 500_000
    assert_same_features(stream_features(data.batch, data.labels, batch_sizes=(1000,)), data.reference)
    partitioned = stream_features(data.batch, data.labels, batch_sizes=(5000,), n_partitions=3)
    assert_same_features(partitioned, data.reference)


# ------------------------------------------------------------------------------- customer state semantics


def _batch(rows: list[tuple[str, str, str, int, int]]) -> TxBatch:
    """Rows of (transaction id, customer, terminal, time ms, cents)."""
    cents = np.array([r[4] for r in rows], dtype=np.int64)
    return TxBatch(
        transaction_id=[r[0] for r in rows],
        customer_id=[r[1] for r in rows],
        terminal_id=[r[2] for r in rows],
        time_ms=np.array([r[3] for r in rows], dtype=np.int64),
        tx_amount=cents / 100.0,
        amount_cents=cents,
    )


def _oracle(rows: list[tuple[str, str, str, int, int]]) -> dict[str, np.ndarray]:
    """Brute-force customer features, by their definition over the stream order: a row sees
    itself and the earlier rows (stream order) of its customer."""
    windows = [
        (10 * MINUTE, "CUSTOMER_ID_NB_TX_10MIN_WINDOW", "CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW", False),
        (HOUR, "CUSTOMER_ID_NB_TX_1HOUR_WINDOW", "CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW", False),
        (DAY, "CUSTOMER_ID_NB_TX_1DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW", True),
        (7 * DAY, "CUSTOMER_ID_NB_TX_7DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW", True),
        (30 * DAY, "CUSTOMER_ID_NB_TX_30DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW", True),
    ]
    out: dict[str, list[float]] = {name: [] for name in CUSTOMER_FEATURES}
    for i, (_, cust, term, t, cents) in enumerate(rows):
        earlier = [r for r in rows[:i] if r[1] == cust]
        for width, count_name, amount_name, is_mean in windows:
            inside = [r[4] for r in [*earlier, rows[i]] if t - width < r[3] <= t]
            out[count_name].append(len(inside))
            out[amount_name].append(sum(inside) / 100 / (len(inside) if is_mean else 1))
        previous = [r[3] for r in earlier if r[3] <= t]
        gap = t - max(previous) if previous else None
        out["CUSTOMER_SECONDS_SINCE_PREV_TX"].append(
            gap / 1000 if gap is not None and gap < 30 * DAY else -1.0
        )
        avg = out["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"][-1]
        out["AMOUNT_TO_CUSTOMER_AVG_30DAY"].append(cents / 100 / avg if avg > 0 else 0.0)
        recent_here = [r for r in earlier if r[2] == term and r[3] > t - 30 * DAY]
        out["CUSTOMER_FIRST_TIME_AT_TERMINAL"].append(0.0 if recent_here else 1.0)
    return {name: np.array(values, dtype=np.float64) for name, values in out.items()}


def _random_stream(seed: int, n: int, *, late: bool) -> list[tuple[str, str, str, int, int]]:
    """Few customers and terminals, coarse times (many ties), about 2 months; optionally rows up
    to 6 hours late (out of order)."""
    rng = np.random.default_rng(seed)
    t = EPOCH_2000_MS + 7000 * DAY
    rows = []
    for i in range(n):
        t += int(rng.choice([0, 0, 1000, 60_000, 5 * MINUTE, 2 * HOUR, DAY // 2, DAY // 2]))
        when = t - int(rng.integers(0, 6 * HOUR)) if late and rng.random() < 0.15 else t
        rows.append(
            (f"tx{i}", f"c{rng.integers(0, 4)}", f"T{rng.integers(0, 3)}", when, int(rng.integers(0, 30_000)))
        )
    return rows


@pytest.mark.parametrize("late", [False, True], ids=["in-order", "out-of-order"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_customer_features_equal_brute_force_definitions(seed: int, late: bool) -> None:
    rows = _random_stream(seed, 400, late=late)
    expected = _oracle(rows)
    state = CustomerState()
    rng = np.random.default_rng(seed + 100)
    got: dict[str, list[np.ndarray]] = {name: [] for name in CUSTOMER_FEATURES}
    start = 0
    while start < len(rows):
        size = int(rng.choice([1, 2, 5, 30, 120]))
        result = state.update_and_compute(_batch(rows[start : start + size]))
        for name in CUSTOMER_FEATURES:
            got[name].append(result[name])
        start += size
    for name in CUSTOMER_FEATURES:
        np.testing.assert_allclose(
            np.concatenate(got[name]), expected[name], rtol=0, atol=TOLERANCE, err_msg=name
        )


def test_ties_in_a_batch_count_only_earlier_rows() -> None:
    t = EPOCH_2000_MS + 7000 * DAY
    state = CustomerState()
    out = state.update_and_compute(
        _batch(
            [("a", "c", "T", t, 100), ("b", "c", "T", t, 200), ("x", "d", "T", t, 1), ("c", "c", "U", t, 300)]
        )
    )
    np.testing.assert_array_equal(out["CUSTOMER_ID_NB_TX_1DAY_WINDOW"], [1, 2, 1, 3])
    np.testing.assert_allclose(out["CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW"], [1.0, 3.0, 0.01, 6.0])
    np.testing.assert_array_equal(out["CUSTOMER_SECONDS_SINCE_PREV_TX"], [-1, 0, -1, 0])
    np.testing.assert_array_equal(out["CUSTOMER_FIRST_TIME_AT_TERMINAL"], [1, 0, 1, 1])
    # The same tie split over two batches gives the same counts.
    state = CustomerState()
    first = state.update_and_compute(_batch([("a", "c", "T", t, 100)]))
    second = state.update_and_compute(_batch([("b", "c", "T", t, 200), ("c", "c", "U", t, 300)]))
    assert first["CUSTOMER_ID_NB_TX_1DAY_WINDOW"].tolist() + second[
        "CUSTOMER_ID_NB_TX_1DAY_WINDOW"
    ].tolist() == [
        1,
        2,
        3,
    ]


def test_replaying_the_first_half_restores_the_state() -> None:
    rows = _random_stream(7, 600, late=False)
    half = 300
    uninterrupted = CustomerState()
    for start in range(0, half, 40):
        uninterrupted.update_and_compute(_batch(rows[start : min(half, start + 40)]))
    restored = CustomerState()
    for start in range(0, half, 128):  # replayed in other batch sizes
        restored.replay(_batch(rows[start : min(half, start + 128)]))
    # (Expiry is lazy, so the number of events held may differ; what they answer may not.)
    assert restored.n_customers == uninterrupted.n_customers
    last = rows[half - 1][3]
    recent = [r[0] for r in rows[:half] if r[3] > last - 30 * DAY]
    assert len(recent) > 50
    assert restored.seen(recent).all() and uninterrupted.seen(recent).all()
    for start in range(half, len(rows), 40):
        batch = _batch(rows[start : start + 40])
        a = uninterrupted.update_and_compute(batch)
        b = restored.update_and_compute(batch)
        for name in CUSTOMER_FEATURES:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_duplicates_are_detected_within_30_days() -> None:
    t = EPOCH_2000_MS + 7000 * DAY
    state = CustomerState()
    np.testing.assert_array_equal(state.seen(["a", "b", "a", "c", "b"]), [False, False, True, False, True])
    np.testing.assert_array_equal(state.seen(["a"]), [False])  # seen() records nothing
    state.update_and_compute(_batch([("a", "c1", "T", t, 100), ("b", "c2", "T", t, 100)]))
    np.testing.assert_array_equal(state.seen(["a", "z", "b"]), [True, False, True])
    state.update_and_compute(_batch([("m", "c1", "T", t + 29 * DAY, 100)]))
    np.testing.assert_array_equal(state.seen(["a", "m"]), [True, True])
    for day in range(30, 45):  # time moves on: the old ids are forgotten
        state.update_and_compute(_batch([(f"d{day}", "c3", "T", t + day * DAY, 100)]))
    np.testing.assert_array_equal(state.seen(["a", "b", "m", "d44"]), [False, False, True, True])


def test_empty_batch() -> None:
    empty = _batch([])
    features = compute_features(empty, CustomerState(), TerminalState())
    assert list(features) == FEATURE_NAMES
    assert all(len(v) == 0 for v in features.values())
    assert feature_matrix(features).shape == (0, 23)


# ------------------------------------------------------------------------------- terminal state semantics


def test_terminal_windows_labels_and_duplicates() -> None:
    t0 = EPOCH_2000_MS + 7000 * DAY
    state = TerminalState()
    state.observe(_batch([("x1", "c", "T", t0, 1), ("x2", "c", "T", t0 + HOUR, 1), ("x3", "c", "U", t0, 1)]))
    state.observe(_batch([("x1", "c", "T", t0, 1)]))  # redelivered: counted once

    def at(terminal: str, t: int) -> dict[str, float]:
        return {k: float(v[0]) for k, v in state.compute([terminal], [t]).items()}

    # 1-day window at t0 + 7d is (t0 - 1d, t0]: x1 only (x2 is after t0).
    assert at("T", t0 + 7 * DAY)["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 1
    # At t0 + 8d the window is (t0, t0 + 1d]: x1 has left (open lower bound), x2 is in.
    assert at("T", t0 + 8 * DAY)["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 1
    assert at("T", t0 + 8 * DAY + HOUR)["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 0
    assert at("T", t0 + 7 * DAY - 1)["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 0
    assert at("T", t0 + 7 * DAY + HOUR)["TERMINAL_ID_NB_TX_30DAY_WINDOW"] == 2

    late = t0 + 7 * DAY + HOUR
    assert at("T", late)["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0.0
    state.observe_labels(["x1"], [True])
    assert at("T", late)["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0.5
    state.observe_labels(["x1", "unknown"], [True, True])  # repeated label: not counted twice
    assert at("T", late)["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0.5
    state.observe_labels(["x1", "x2", "x2"], [False, True, False])  # corrected; last one wins
    assert at("T", late)["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0.0
    state.observe_labels(["x1", "x2"], [True, True])
    assert at("T", late)["TERMINAL_ID_RISK_30DAY_WINDOW"] == 1.0
    assert at("T", late)["TERMINAL_ID_RISK_1DAY_WINDOW"] == 1.0  # (t0 - 23h, t0 + 1h]: x1, x2
    assert at("U", late)["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0.0
    assert at("nowhere", late) == dict.fromkeys(at("nowhere", late), 0.0)

    # Real-time: other transactions in [t - 10 min, t).
    assert at("T", t0 + 10 * MINUTE)["TERMINAL_ID_NB_TX_10MIN_WINDOW"] == 1
    assert at("T", t0 + 10 * MINUTE + 1)["TERMINAL_ID_NB_TX_10MIN_WINDOW"] == 0
    assert at("T", t0)["TERMINAL_ID_NB_TX_10MIN_WINDOW"] == 0  # itself is not counted
    assert at("T", t0 + HOUR)["TERMINAL_ID_NB_TX_10MIN_WINDOW"] == 0


def test_labels_waiting_for_their_transaction_are_bounded_oldest_dropped_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("fraudstream.features.terminal.MAX_PENDING_LABELS", 5)
    state = TerminalState()
    t0 = EPOCH_2000_MS + 18 * 365 * DAY
    state.observe_labels([f"p{i}" for i in range(4)], [True] * 4)
    state.observe_labels([f"p{i}" for i in range(4, 8)], [True] * 4)  # p0..p2 dropped
    state.observe_labels(["p8"], [True])  # p3 dropped
    assert len(state._pending) == 5
    # The transactions arrive: only the five newest labels were kept to be applied.
    state.observe(_batch([(f"p{i}", "c", "T", t0 + i, 1) for i in range(9)]))
    risk = state.compute(["T"], [t0 + 7 * DAY + HOUR])["TERMINAL_ID_RISK_30DAY_WINDOW"]
    assert float(risk[0]) == 5 / 9
    assert not state._pending


def test_terminal_state_reports_when_a_late_query_is_no_longer_exact() -> None:
    """A worker that ran ahead on one partition must notice that a partition handed to it
    further back needs events already expired (it then rebuilds the state from the log)."""
    t0 = EPOCH_2000_MS + 7000 * DAY
    state = TerminalState(late_margin_ms=2 * DAY)
    for day in range(120):
        state.observe(_batch([(f"x{day}-{i}", "c", f"T{i % 7}", t0 + day * DAY + i, 1) for i in range(50)]))
    assert state.exact_at(t0 + 119 * DAY)
    assert not state.exact_at(t0 + 60 * DAY), "120 days observed: the state only covers ~37 + margin"
    fresh = TerminalState(late_margin_ms=2 * DAY)
    fresh.hold(t0 + 10 * DAY)  # a slow partition still deciding day 10 keeps what it needs
    for day in range(120):
        fresh.observe(_batch([(f"y{day}-{i}", "c", f"T{i % 7}", t0 + day * DAY + i, 1) for i in range(50)]))
    assert fresh.exact_at(t0 + 10 * DAY)


# ------------------------------------------------------------------------------- assembly


def test_time_features_are_utc_weekend_and_night() -> None:
    stamps = pd.to_datetime(
        ["2018-04-01 00:00:31", "2018-04-02 06:59:59.999", "2018-04-02 07:00:00", "2018-04-07 23:59:59"],
        format="ISO8601",
    )
    ms = stamps.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    got = time_features(ms)
    np.testing.assert_array_equal(got["TX_DURING_WEEKEND"], [1, 0, 0, 1])
    np.testing.assert_array_equal(got["TX_DURING_NIGHT"], [1, 1, 0, 0])


def test_compute_features_returns_every_feature_in_order(small: Dataset) -> None:
    batch = small.batch.take(np.arange(50))
    terminal = TerminalState()
    terminal.observe(batch)
    features = compute_features(batch, CustomerState(), terminal)
    assert list(features) == FEATURE_NAMES
    matrix = feature_matrix(features)
    assert matrix.shape == (50, len(FEATURE_NAMES)) and matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix[:, 0], batch.tx_amount)
    assert matrix[:, :3].shape == feature_matrix(features, HANDBOOK_FEATURES[:3]).shape


# ------------------------------------------------------------------------------- compaction


def test_compaction_forgets_departed_ids_without_changing_features(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudstream.features import customer as customer_module
    from fraudstream.features import terminal as terminal_module

    rng = np.random.default_rng(11)
    t0 = EPOCH_2000_MS + 7000 * DAY
    batches = []
    for day in range(150):  # customers and terminals churn: new ids every 10 days
        era = day // 10
        rows = []
        for i in range(40):
            t = t0 + day * DAY + int(rng.integers(0, DAY))
            rows.append(
                (
                    f"d{day}-{i}",
                    f"c{era}-{rng.integers(0, 30)}",
                    f"T{era}-{rng.integers(0, 20)}",
                    t,
                    int(rng.integers(1, 9999)),
                )
            )
        rows.sort(key=lambda r: r[3])
        batches.append(_batch(rows))

    plain_customers, plain_terminals = CustomerState(), TerminalState()
    monkeypatch.setattr(customer_module, "COMPACT_FIRST_AT", 64)
    monkeypatch.setattr(terminal_module, "COMPACT_FIRST_AT", 64)
    small_customers, small_terminals = CustomerState(), TerminalState()
    for day, batch in enumerate(batches):
        plain_terminals.observe(batch)
        small_terminals.observe(batch)
        if day >= 7:  # labels a week later, some of them fraud
            labelled = batches[day - 7]
            fraud = rng.random(len(labelled)) < 0.3
            plain_terminals.observe_labels(labelled.transaction_id, fraud)
            small_terminals.observe_labels(labelled.transaction_id, fraud)
        a = compute_features(batch, plain_customers, plain_terminals)
        b = compute_features(batch, small_customers, small_terminals)
        for name in FEATURE_NAMES:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert a["TERMINAL_ID_RISK_7DAY_WINDOW"].max() > 0
    assert plain_customers.n_customers == 15 * 30 and plain_terminals.n_terminals == 15 * 20
    assert small_customers.n_customers < 200 and small_terminals.n_terminals < 200
    # Explicit compaction is safe at any time too.
    small_customers.compact()
    small_terminals.compact()
    last = batches[-1]
    np.testing.assert_array_equal(
        plain_terminals.compute(last.terminal_id, last.time_ms + HOUR)["TERMINAL_ID_NB_TX_10MIN_WINDOW"],
        small_terminals.compute(last.terminal_id, last.time_ms + HOUR)["TERMINAL_ID_NB_TX_10MIN_WINDOW"],
    )


def test_label_arriving_before_its_transaction_is_applied_when_it_is_observed() -> None:
    """The training reader can run ahead of an input partition: labels must wait, not vanish."""
    from fraudstream.features.terminal import TerminalState

    day = 86_400_000
    t0 = 1_522_540_800_000
    early, on_time = TerminalState(), TerminalState()
    ids, terms, times = ["a", "b", "c"], ["T1", "T1", "T1"], np.array([t0, t0 + 1000, t0 + 2000])
    labels = np.array([True, False, True])
    early.observe_labels(ids, labels)  # before the transactions
    early.observe_transactions(ids, terms, times)
    on_time.observe_transactions(ids, terms, times)
    on_time.observe_labels(ids, labels)
    q = np.array([t0 + 7 * day + 5000])  # window (t0 - 1 day + 5 s, t0 + 5 s]
    a, b = early.compute(["T1"], q), on_time.compute(["T1"], q)
    assert a["TERMINAL_ID_RISK_1DAY_WINDOW"][0] == pytest.approx(2 / 3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
