"""Unit tests of the sorted-run stores under the streaming features: window store, key table,
interner (edge cases: ties, window boundaries, expiry, many runs, id collisions)."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.contracts.batch import EPOCH_2000_MS
from fraudstream.features import interner as interner_module
from fraudstream.features.interner import Interner
from fraudstream.features.key_table import KeyTable
from fraudstream.features.sorted_search import FENCE_MIN_SIZE, build_fence, fenced_search
from fraudstream.features.window_store import (
    MAX_ENTITIES,
    WindowStore,
    _search_below,
    pack_keys,
    query_keys,
)

DAY = 86_400_000
T0 = EPOCH_2000_MS + 18 * 365 * DAY


def _brute(ent, tim, val, q_ent, lo, hi, hi_inclusive):
    counts, sums = [], []
    for e, a, b in zip(q_ent, lo, hi, strict=True):
        upper = tim <= b if hi_inclusive else tim < b
        m = (ent == e) & (tim > a) & upper
        counts.append(int(m.sum()))
        sums.append(int(val[m].sum()))
    return np.array(counts), np.array(sums)


@pytest.mark.parametrize("track_values", [True, False])
def test_count_sum_matches_brute_force_with_ties_and_many_runs(track_values: bool) -> None:
    rng = np.random.default_rng(1)
    store = WindowStore(10 * DAY, track_values=track_values)
    ents, tims, vals = [], [], []
    clock = T0
    for _ in range(120):
        size = int(rng.choice([1, 2, 7, 50, 300]))
        # Few entities and coarse times: many equal (entity, time) keys, within and across runs.
        e = rng.integers(0, 6, size)
        t = clock + rng.integers(0, 20, size) * 1000  # unsorted inside the batch
        v = rng.integers(-500, 5000, size)
        store.insert(e, t, v if track_values else None)
        ents.append(e)
        tims.append(t)
        vals.append(v)
        clock += 15_000
    ent, tim, val = np.concatenate(ents), np.concatenate(tims), np.concatenate(vals)
    assert store.n_events == len(ent)  # nothing older than the horizon yet
    # Queries on exact event times, +-1 ms, and windows of various widths, including empty ones.
    q = rng.integers(0, len(ent), 400)
    q_ent = np.concatenate([ent[q], [7, -1]])
    hi = np.concatenate([tim[q] + rng.integers(-1, 2, len(q)), [T0, T0]])
    lo = hi - np.concatenate([rng.choice([0, 1000, 5000, 60_000, 10**9], len(q)), [1, 1]])
    for inclusive in (True, False):
        count, total = store.count_sum(q_ent, lo, hi, hi_inclusive=inclusive)
        exp_count, exp_sum = _brute(ent, tim, val, q_ent, lo, hi, inclusive)
        np.testing.assert_array_equal(count, exp_count)
        np.testing.assert_array_equal(total, exp_sum if track_values else exp_count)


def test_window_bounds_are_open_below_and_closed_above() -> None:
    store = WindowStore(DAY)
    store.insert([3, 3, 3], [T0 + 1000, T0 + 2000, T0 + 2000], [1, 10, 100])
    count, total = store.count_sum([3, 3, 3, 3], [T0 + 1000, T0 + 999, T0 + 999, T0 + 2000], [T0 + 2000] * 4)
    np.testing.assert_array_equal(count, [2, 3, 3, 0])
    np.testing.assert_array_equal(total, [110, 111, 111, 0])
    count, total = store.count_sum([3], [T0 + 999], [T0 + 2000], hi_inclusive=False)
    assert (count[0], total[0]) == (1, 1)
    # lo >= hi is an empty interval, not a negative count.
    count, total = store.count_sum([3], [T0 + 5000], [T0 + 1000])
    assert (count[0], total[0]) == (0, 0)


def test_last_before_is_strict_and_per_entity() -> None:
    store = WindowStore(DAY, track_values=False)
    store.insert([1, 1, 2], [T0 + 100, T0 + 300, T0 + 200])
    store.insert([1], [T0 + 200])  # another run
    got = store.last_before(
        [1, 1, 1, 1, 2, 2, 0, 3, -1],
        [T0 + 300, T0 + 301, T0 + 100, T0 + 250, T0 + 201, T0 + 200, T0 + 999, T0 + 999, T0],
    )
    np.testing.assert_array_equal(got, [T0 + 200, T0 + 300, -1, T0 + 200, T0 + 200, -1, -1, -1, -1])


def test_expiry_drops_old_events_and_keeps_the_horizon_exact() -> None:
    rng = np.random.default_rng(2)
    horizon = 10 * DAY
    store = WindowStore(horizon, slack_ms=DAY)
    ents, tims, vals = [], [], []
    clock = T0
    for _ in range(400):  # 100 days, 4 batches a day
        e = rng.integers(0, 20, 200)
        t = np.sort(clock + rng.integers(0, DAY // 4, 200))
        v = rng.integers(1, 1000, 200)
        store.insert(e, t, v)
        ents.append(e)
        tims.append(t)
        vals.append(v)
        clock += DAY // 4
    ent, tim, val = np.concatenate(ents), np.concatenate(tims), np.concatenate(vals)
    watermark = int(tim.max())
    assert store.watermark_ms == watermark
    # Bounded: the horizon, plus the slack, plus what runs not yet merged still hold.
    per_day = 800
    assert store.n_events <= (horizon + DAY) // DAY * per_day + 4 * per_day
    assert store.n_events < len(ent) / 5
    # Every window inside the horizon is still exact.
    q = rng.integers(0, 20, 300)
    hi = watermark - rng.integers(0, DAY, 300)
    lo = hi - rng.integers(1, horizon - DAY, 300)
    count, total = store.count_sum(q, lo, hi)
    exp_count, exp_sum = _brute(ent, tim, val, q, lo, hi, True)
    np.testing.assert_array_equal(count, exp_count)
    np.testing.assert_array_equal(total, exp_sum)


def test_many_single_inserts_keep_few_runs() -> None:
    store = WindowStore(DAY)
    for i in range(3000):
        store.insert([i % 7], [T0 + i], [1])
    assert store.n_runs <= 12
    count, total = store.count_sum(np.arange(7), np.full(7, T0 - 1), np.full(7, T0 + 5000))
    np.testing.assert_array_equal(count, [429] * 4 + [428] * 3)
    np.testing.assert_array_equal(total, count)


def test_entity_and_time_range_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="entity index out of range"):
        pack_keys([MAX_ENTITIES], [T0])
    with pytest.raises(ValueError, match="entity index out of range"):
        pack_keys([-1], [T0])
    with pytest.raises(ValueError, match="outside the supported range"):
        pack_keys([0], [EPOCH_2000_MS - 1])
    store = WindowStore(30 * 365 * DAY)
    with pytest.raises(ValueError, match="pass value"):
        store.insert([0], [T0])
    # Queries never raise: times before 2000 clamp, unknown entities count nothing.
    store.insert([0, MAX_ENTITIES - 1], [EPOCH_2000_MS, T0], [5, 7])
    count, total = store.count_sum([0, MAX_ENTITIES - 1, -1], [0, 0, 0], [EPOCH_2000_MS, 2**62, 2**62])
    np.testing.assert_array_equal(count, [1, 1, 0])
    np.testing.assert_array_equal(total, [5, 7, 0])


def test_query_keys_order_is_monotone_across_entities() -> None:
    keys = query_keys([1, 1, 2, 2], [EPOCH_2000_MS - DAY, T0, EPOCH_2000_MS - DAY, T0])
    assert list(keys) == sorted(keys)


@pytest.mark.parametrize("distance", [0, 1, 3, 40, 2000])
@pytest.mark.parametrize("side", ["left", "right"])
def test_search_below_matches_searchsorted(distance: int, side: str) -> None:
    rng = np.random.default_rng(distance)
    keys = np.sort(rng.integers(0, 10**7, 50_000))
    keys[1000:1100] = keys[1000]  # a long tie
    targets = np.sort(rng.choice(keys, 300)) + rng.integers(-1, 2, 300)
    upper_targets = targets + distance * 200
    upper = np.searchsorted(keys, upper_targets, side=side)
    got = _search_below(keys, upper, targets, side)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got, np.searchsorted(keys, targets, side=side))  # type: ignore[call-overload]


def test_cumulative_chain_equals_independent_queries() -> None:
    rng = np.random.default_rng(5)
    store = WindowStore(40 * DAY)
    for _ in range(30):
        e = rng.integers(0, 50, 2000)
        store.insert(e, T0 + rng.integers(0, 30 * DAY, 2000), rng.integers(0, 100, 2000))
    # Few queries against big runs: the stepping (galloping) path is used.
    e = np.sort(rng.integers(0, 50, 20))
    t = T0 + rng.integers(0, 30 * DAY, 20)
    order = np.argsort(query_keys(e, t))
    e, t = e[order], t[order]
    shifts = [0, 1, 60_000, DAY, 7 * DAY, 30 * DAY]
    keys = [query_keys(e, t - s) for s in shifts]
    sides = ["left", "left", "right", "right", "right", "right"]
    chained = store.cumulative_chain(keys, sides)  # type: ignore[arg-type]
    for k, side, (count, total) in zip(keys, sides, chained, strict=True):
        c, s = store.cumulative(k, side)  # type: ignore[arg-type]
        np.testing.assert_array_equal(count, c)
        np.testing.assert_array_equal(total, s)


# ------------------------------------------------------------------------------- KeyTable


def test_key_table_latest_time_wins_and_columns_follow() -> None:
    table = KeyTable({"time": np.int64, "tag": np.int32}, horizon_ms=DAY)
    table.insert([5, 9, 5], {"time": [T0 + 3, T0 + 1, T0 + 2], "tag": [1, 2, 3]})
    table.insert([9, 4], {"time": [T0, T0 + 4], "tag": [7, 8]})  # older row for 9: ignored
    found, cols = table.lookup([4, 5, 9, 6])
    np.testing.assert_array_equal(found, [True, True, True, False])
    np.testing.assert_array_equal(cols["time"], [T0 + 4, T0 + 3, T0 + 1, 0])
    np.testing.assert_array_equal(cols["tag"], [8, 1, 2, 0])
    run_of, pos = table.locate([5, 6])
    table.assign(run_of, pos, "tag", [42, 43])
    assert table.lookup([5])[1]["tag"][0] == 42
    np.testing.assert_array_equal(table.contains([4, 5, 6, 9]), [True, True, False, True])


def test_key_table_expires_and_merges() -> None:
    table = KeyTable({"time": np.int64}, horizon_ms=10 * DAY, slack_ms=DAY)
    for day in range(60):
        table.insert(np.arange(day * 100, day * 100 + 100), {"time": T0 + day * DAY})
    assert table.n_runs <= 12
    present = table.contains(np.arange(6000))
    assert present[-11 * 100 :].all()  # the last 10 days (plus the watermark's day) are kept
    assert not present[: 40 * 100].any()  # long expired
    # Many random inserts with repeats: one row per key, the latest.
    rng = np.random.default_rng(0)
    t2 = KeyTable({"time": np.int64}, horizon_ms=10**12)
    best: dict[int, int] = {}
    for _ in range(200):
        k = rng.integers(0, 300, 20)
        t = T0 + rng.integers(0, 10**6, 20)
        t2.insert(k, {"time": t})
        for a, b in zip(k.tolist(), t.tolist(), strict=True):
            best[a] = max(best.get(a, 0), b)
    keys = np.array(sorted(best))
    found, cols = t2.lookup(keys)
    assert found.all()
    np.testing.assert_array_equal(cols["time"], [best[k] for k in keys.tolist()])


# ------------------------------------------------------------------------------- Interner


def test_interner_dense_stable_indices() -> None:
    interner = Interner(capacity=4)
    a = interner.lookup(["x", "y", "x", "z"])
    assert a[0] == a[2] and len({*a.tolist()}) == 3 and sorted({*a.tolist()}) == [0, 1, 2]
    b = interner.lookup([f"id-{i}" for i in range(5000)] + ["y", "a-much-longer-identifier-than-before"])
    assert b[-2] == a[1]
    assert len(interner) == 3 + 5000 + 1
    assert interner.lookup(["x", "nope"], add=False).tolist() == [a[0], -1]
    assert interner.names(b[:3]) == ["id-0", "id-1", "id-2"]
    assert interner.names([b[-1]]) == ["a-much-longer-identifier-than-before"]


def test_interner_is_exact_when_hashes_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    # A deliberately terrible hash (the length): nearly every id collides with another.
    monkeypatch.setattr(
        interner_module, "hash_ids", lambda ids, n=-1: np.array([len(s) for s in ids], np.int64)
    )
    interner = Interner()
    ids = [f"{i}" for i in range(300)] + ["a", "b", "ab"]
    first = interner.lookup(ids)
    assert len(set(first.tolist())) == len(ids)  # all distinct
    again = interner.lookup(list(reversed(ids)) + ["zz", "zz"])
    np.testing.assert_array_equal(again[: len(ids)], first[::-1])
    assert again[-1] == again[-2] == len(ids)
    assert interner.lookup(["never", "a"], add=False).tolist() == [-1, first[ids.index("a")]]


def test_interner_longer_id_is_not_cut_to_a_stored_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids are converted at the stored names' width when they fit; one that does not must not
    be cut to that width and taken for the name it starts with, even when the hashes agree."""
    monkeypatch.setattr("fraudstream.features.interner.hash_ids",
                        lambda ids, n=-1: np.zeros(len(ids), dtype=np.int64))  # all collide
    interner = Interner()
    first = interner.lookup(["abc", "xy"])
    got = interner.lookup(["abcd", "abc", "ab", "xy"])
    assert got[1] == first[0] and got[3] == first[1]
    assert len({*got.tolist(), *first.tolist()}) == 4  # "abcd" and "ab" are new ids
    assert interner.names(got.tolist()) == ["abcd", "abc", "ab", "xy"]
    assert interner.lookup(["abcde"], add=False).tolist() == [-1]


# ------------------------------------------------------------------------------- fenced search


@pytest.mark.parametrize("n", [0, 5, FENCE_MIN_SIZE, FENCE_MIN_SIZE + 1, 3 * FENCE_MIN_SIZE + 17])
@pytest.mark.parametrize("side", ["left", "right"])
def test_fenced_search_equals_searchsorted(n: int, side: str) -> None:
    rng = np.random.default_rng(n)
    keys = np.sort(rng.integers(-(10**6), 10**6, n))  # many duplicates, runs of equal keys
    if n > 200:
        keys[100:200] = keys[100]
    fence = build_fence(keys)
    assert (fence is None) == (n < FENCE_MIN_SIZE)
    queries = np.concatenate(
        [rng.integers(-(2 * 10**6), 2 * 10**6, 5000), keys[:: max(1, n // 3000)], [-(2**62), 2**62]]
    )
    for q in (queries, np.sort(queries)):
        np.testing.assert_array_equal(
            fenced_search(keys, fence, q, side),  # type: ignore[arg-type]
            np.searchsorted(keys, q, side=side),  # type: ignore[call-overload]
        )


def test_interner_retain_and_store_remap_keep_order() -> None:
    interner = Interner()
    idx = interner.lookup([f"e{i}" for i in range(10)])
    store = WindowStore(30 * DAY)
    store.insert(idx, T0 + idx * 1000, idx + 1)
    keep = np.zeros(10, dtype=bool)
    keep[[1, 4, 7]] = True
    remap = interner.retain(keep)
    assert remap.tolist() == [-1, 0, -1, -1, 1, -1, -1, 2, -1, -1]
    store.remap_entities(remap)
    assert store.n_events == 3
    assert interner.lookup(["e4", "e1", "e7"], add=False).tolist() == [1, 0, 2]
    assert interner.lookup(["e0"], add=False).tolist() == [-1]
    count, total = store.count_sum([0, 1, 2], [T0 - 1] * 3, [T0 + 10**6] * 3)
    np.testing.assert_array_equal(count, [1, 1, 1])
    np.testing.assert_array_equal(total, [2, 5, 8])
    np.testing.assert_array_equal(store.entities_present(4), [True, True, True, False])
    assert interner.lookup(["new"]).tolist() == [3]
