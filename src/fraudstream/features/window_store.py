"""Vectorised time-window counts and sums per entity, for streaming features.

Why this shape: a worker must answer, for every transaction of a batch, "how many events (and
what total) did this entity have in ``(t - w, t]``" for several ``w``, at well over 100k
transactions per second, with exact integer sums and a bounded memory. A per-entity Python
deque would cost a Python loop per transaction; instead every event is one ``int64`` *key*

    key = entity << 41 | (time_ms - EPOCH_2000_MS)

(41 bits of milliseconds is about 69 years after 2000; ``entity < 2**22``), kept in a few
sorted *runs* (a small log-structured merge tree, size tiered). A window query is two sorted
searches per run on whole arrays of keys (:func:`~fraudstream.features.sorted_search.fenced_search`,
a faster ``np.searchsorted`` for big runs), and the sum comes from a prefix sum of the values
stored next to the keys. Inserting a batch adds one sorted run; runs are merged when a run is
not much smaller than the one before it (so there are O(log n) runs, few of them big), and a
merge drops the events older than ``watermark - horizon_ms``.

Several bounds of the same rows (``t``, ``t - 10 min``, ``t - 1 h``, ...) are asked together
(:meth:`WindowStore.cumulative_chain`, :meth:`WindowStore.positions` with ``upper``): a bound
only steps back from the previous one's positions, and costs nearly nothing when no event lies
in between.

Counts need no prefix array: the number of events of a run below a key is the search position
itself. Memory is 8 bytes per event (keys only, ``track_values=False``) or 16 bytes (keys and
an ``int64`` prefix sum), plus 1/64 for the search fences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from fraudstream.contracts.batch import EPOCH_2000_MS
from fraudstream.features.sorted_search import build_fence, fenced_search

__all__ = [
    "ENTITY_BITS",
    "MAX_ENTITIES",
    "TIME_BITS",
    "WindowStore",
    "pack_keys",
    "query_keys",
]

#: Bits of the key holding the time offset (ms since 2000-01-01 UTC): about 69 years.
TIME_BITS = 41
#: Bits of the key holding the entity index (keys stay positive int64: 22 + 41 = 63).
ENTITY_BITS = 22
#: Entities must be ``0 <= entity < MAX_ENTITIES``.
MAX_ENTITIES = 1 << ENTITY_BITS
_TIME_MASK = (1 << TIME_BITS) - 1
#: Last representable event time (UTC epoch ms).
MAX_TIME_MS = EPOCH_2000_MS + _TIME_MASK

IntArray = npt.NDArray[np.int64]
Side = Literal["left", "right"]


def pack_keys(entity: npt.ArrayLike, time_ms: npt.ArrayLike) -> IntArray:
    """Keys of events, validated (an out-of-range entity or time is an error, not a wrap-around).

    Raises:
        ValueError: when an entity is outside ``[0, MAX_ENTITIES)`` or a time is before
            2000-01-01 UTC or after :data:`MAX_TIME_MS`.
    """
    ent = np.asarray(entity, dtype=np.int64)
    rel = np.asarray(time_ms, dtype=np.int64) - EPOCH_2000_MS
    if ent.size:
        lo, hi = int(ent.min()), int(ent.max())
        if lo < 0 or hi >= MAX_ENTITIES:
            raise ValueError(
                f"entity index out of range [0, {MAX_ENTITIES}): got {lo if lo < 0 else hi}; "
                "a store holds at most 2**22 distinct entities"
            )
        lo, hi = int(rel.min()), int(rel.max())
        if lo < 0 or hi > _TIME_MASK:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"event time {bad + EPOCH_2000_MS} ms is outside the supported range "
                f"[{EPOCH_2000_MS}, {MAX_TIME_MS}] (2000-01-01 .. about 2069 UTC)"
            )
    return (ent << TIME_BITS) | rel


def query_keys(entity: npt.ArrayLike, time_ms: npt.ArrayLike) -> IntArray:
    """Keys for queries: never raise, clamp times to the representable range.

    A time before 2000 becomes ``-1`` relative (just below every event of the entity) and a
    negative entity (an unknown id) gives keys below every stored key, so its counts are 0.
    """
    ent = np.asarray(entity, dtype=np.int64)
    rel = np.clip(np.asarray(time_ms, dtype=np.int64) - EPOCH_2000_MS, -1, _TIME_MASK)
    # ``+`` rather than ``|`` so that -1 means "the last key of the previous entity".
    return (ent << TIME_BITS) + rel


#: Positions of a bound are found from the previous (greater) bound's positions in runs at
#: least this many times bigger than the number of queries; smaller runs are searched directly.
_STEP_MIN_RATIO = 8
#: When more than this fraction of the rows moved between two bounds, the rest of them are
#: found with one ``np.searchsorted`` (cheaper than galloping far).
_STEP_SEARCH_FRACTION = 0.05


def _search_below(
    keys: IntArray, upper: IntArray, target: IntArray, side: Side, fence: IntArray | None = None
) -> IntArray:
    """``np.searchsorted(keys, target, side)`` knowing ``upper``, an upper bound of the answer.

    Why: consecutive window bounds of a row (``t``, ``t - 10 min``, ``t - 1 h``...) are often
    separated by no event at all; one vectorised check keeps those rows at ``upper``. The rows
    that move are searched (ascending ``target`` keeps that search cache-friendly), or, when
    they are few, located by galloping backwards from ``upper``.
    """
    result = upper.copy()
    if len(keys) == 0 or upper.size == 0:
        return result

    def before(pos: IntArray, rows: IntArray) -> npt.NDArray[np.bool_]:
        """Whether ``keys[pos]`` lies before the answer (``<= target`` or ``< target``)."""
        k = keys[pos]
        return k <= target[rows] if side == "right" else k < target[rows]

    rows = np.flatnonzero(upper > 0)
    if rows.size:
        rows = rows[~before(upper[rows] - 1, rows)]
    if rows.size == 0:
        return result
    if rows.size > _STEP_SEARCH_FRACTION * upper.size:
        result[rows] = fenced_search(keys, fence, target[rows], side)
        return result
    # Invariant: keys[hi] is not before the answer; find lo (before, or -1) by doubling steps.
    hi = upper[rows] - 1
    lo = np.empty_like(hi)
    active = np.arange(rows.size)
    step = 1
    while active.size:
        probe = hi[active] - step
        below = probe < 0
        found = below.copy()
        inside = np.flatnonzero(~below)
        found[inside] = before(probe[inside], rows[active[inside]])
        done = active[found]
        lo[done] = np.where(below[found], -1, probe[found])
        still = active[~found]
        hi[still] = probe[~found]
        active = still
        step *= 2
    # Binary search in (lo, hi]: keys[lo] before (or lo == -1), keys[hi] not before.
    active = np.flatnonzero(hi - lo > 1)
    while active.size:
        mid = (lo[active] + hi[active]) // 2
        go = before(mid, rows[active])
        lo[active[go]] = mid[go]
        hi[active[~go]] = mid[~go]
        active = active[hi[active] - lo[active] > 1]
    result[rows] = hi
    return result


@dataclass(slots=True)
class _Run:
    """One sorted run: ``keys`` ascending; ``psum[i]`` = sum of the first ``i`` values."""

    keys: IntArray
    psum: IntArray | None
    min_time: int  # relative ms, for expiry decisions without scanning
    max_time: int
    fence: IntArray | None  # see fraudstream.features.sorted_search

    @property
    def size(self) -> int:
        return len(self.keys)

    def values(self) -> IntArray:
        assert self.psum is not None
        return np.diff(self.psum)


def _make_run(keys: IntArray, values: IntArray | None, time_range: tuple[int, int] | None = None) -> _Run:
    """A run from sorted keys (and their values). ``time_range``: known (or conservative:
    lower min) relative time bounds, which saves a pass over big merged runs."""
    psum: IntArray | None = None
    if values is not None:
        psum = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum(values, out=psum[1:])
    if time_range is not None:
        lo, hi = time_range
    elif len(keys):
        times = keys & _TIME_MASK
        lo, hi = int(times.min()), int(times.max())
    else:
        lo = hi = 0
    return _Run(keys=keys, psum=psum, min_time=lo, max_time=hi, fence=build_fence(keys))


def merge_sorted(
    a_keys: IntArray,
    b_keys: IntArray,
    columns: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    a_fence: IntArray | None = None,
) -> tuple[IntArray, list[np.ndarray]]:
    """Merge two ascending key arrays (and aligned columns) in O(n + m log n).

    ``b`` rows go after the equal keys of ``a`` (so "newer run last" is kept for ties).
    """
    n, m = len(a_keys), len(b_keys)
    pos_b = fenced_search(a_keys, a_fence, b_keys, "right") + np.arange(m, dtype=np.int64)
    from_a = np.ones(n + m, dtype=bool)
    from_a[pos_b] = False
    keys = np.empty(n + m, dtype=np.int64)
    keys[pos_b] = b_keys
    keys[from_a] = a_keys
    out: list[np.ndarray] = []
    for col_a, col_b in columns:
        col = np.empty(n + m, dtype=np.result_type(col_a, col_b))
        col[pos_b] = col_b
        col[from_a] = col_a
        out.append(col)
    return keys, out


def should_merge(sizes: Sequence[int], growth: int, max_runs: int) -> bool:
    """Size-tiered policy shared by the stores: merge the two newest runs when the older of the
    two is not ``growth`` times bigger, or when there are too many runs."""
    if len(sizes) < 2:
        return False
    return sizes[-2] <= growth * sizes[-1] or len(sizes) > max_runs


class WindowStore:
    """Events ``(entity, time_ms, value)`` with vectorised window counts and sums.

    Args:
        horizon_ms: how far back queries must stay exact, relative to the latest event time
            inserted (the *watermark*); older events are dropped lazily. Give the longest
            window plus a margin for late queries.
        track_values: keep an ``int64`` prefix sum of the values (exact sums); without it the
            store only counts (8 instead of 16 bytes per event).
        growth: size ratio between consecutive runs (bigger = fewer runs, more merge work).
        max_runs: hard cap on the number of runs.
        slack_ms: a big run is rewritten to drop expired events only once its oldest event is
            ``slack_ms`` past the horizon, so expiry costs O(1) amortised per event
            (default: a fifth of the horizon).
    """

    def __init__(
        self,
        horizon_ms: int,
        *,
        track_values: bool = True,
        growth: int = 4,
        max_runs: int = 12,
        slack_ms: int | None = None,
    ) -> None:
        if horizon_ms <= 0:
            raise ValueError("horizon_ms must be positive")
        self.horizon_ms = int(horizon_ms)
        self.track_values = track_values
        self.growth = int(growth)
        self.max_runs = int(max_runs)
        self.slack_ms = int(slack_ms if slack_ms is not None else max(1, horizon_ms // 5))
        self._runs: list[_Run] = []
        self._watermark = -1  # relative ms of the latest event ever inserted
        #: Absolute ms; when set, expiry counts back from min(watermark, cap): a consumer that
        #: still has to query times >= cap keeps what it needs however far inserts ran ahead.
        self.expiry_cap_ms: int | None = None
        self._dropped_below: int | None = None  # relative ms: every event older may be gone

    # ------------------------------------------------------------------ state

    @property
    def complete_since_ms(self) -> int | None:
        """Every event inserted with a time >= this (UTC epoch ms) is still held; None while
        nothing was ever dropped. Lets a caller check that a late query is still exact."""
        return None if self._dropped_below is None else self._dropped_below + EPOCH_2000_MS

    @property
    def watermark_ms(self) -> int:
        """Latest event time inserted (UTC epoch ms), or -1 before the first insert."""
        return -1 if self._watermark < 0 else self._watermark + EPOCH_2000_MS

    @property
    def n_events(self) -> int:
        """Events held (including not yet dropped expired ones)."""
        return sum(r.size for r in self._runs)

    @property
    def n_runs(self) -> int:
        return len(self._runs)

    @property
    def nbytes(self) -> int:
        """Bytes of the numpy arrays held."""
        return sum(
            r.keys.nbytes
            + (r.psum.nbytes if r.psum is not None else 0)
            + (r.fence.nbytes if r.fence is not None else 0)
            for r in self._runs
        )

    # ------------------------------------------------------------------ insert

    def insert(
        self, entity: npt.ArrayLike, time_ms: npt.ArrayLike, value: npt.ArrayLike | None = None
    ) -> None:
        """Add events (any order, ties allowed).

        Raises:
            ValueError: entity or time out of range, or ``value`` missing while tracking values.
        """
        keys = pack_keys(entity, time_ms)
        values = None
        if self.track_values:
            if value is None:
                raise ValueError("this store tracks values: pass value")
            values = np.broadcast_to(np.asarray(value, dtype=np.int64), keys.shape)
        order = np.argsort(keys, kind="stable")
        self.insert_sorted(keys[order], values[order] if values is not None else None)

    def insert_sorted(self, keys: IntArray, values: IntArray | None = None) -> None:
        """Add events given as already validated, ascending keys (from :func:`pack_keys`).

        The caller's sort is reused (the customer state sorts its batch anyway).
        """
        if len(keys) == 0:
            return
        if self.track_values and values is None:
            raise ValueError("this store tracks values: pass values")
        run = _make_run(
            np.ascontiguousarray(keys, dtype=np.int64),
            np.asarray(values, dtype=np.int64) if self.track_values and values is not None else None,
        )
        self._watermark = max(self._watermark, run.max_time)
        self._runs.append(run)
        self._compact()

    def _cutoff(self) -> int:
        """Relative time below which events may be dropped."""
        wm = self._watermark
        if self.expiry_cap_ms is not None:
            wm = min(wm, self.expiry_cap_ms - EPOCH_2000_MS)
        return wm - self.horizon_ms

    def _filtered(self, keys: IntArray, values: IntArray | None, time_range: tuple[int, int]) -> _Run:
        """A run of the events not older than the cutoff. ``time_range``: the events' relative
        time bounds (the minimum may be a lower bound)."""
        cutoff = self._cutoff()
        lo, hi = time_range
        if len(keys) and lo < cutoff:
            keep = (keys & _TIME_MASK) >= cutoff
            keys = keys[keep]
            values = values[keep] if values is not None else None
            lo = cutoff  # a lower bound of what is left, good enough to schedule expiry
            self._dropped_below = max(cutoff, self._dropped_below or cutoff)
        return _make_run(keys, values, (lo, hi))

    def _merge(self, a: _Run, b: _Run) -> _Run:
        bounds = (min(a.min_time, b.min_time), max(a.max_time, b.max_time))
        if self.track_values:
            keys, (values,) = merge_sorted(a.keys, b.keys, [(a.values(), b.values())], a.fence)
            return self._filtered(keys, values, bounds)
        keys, _ = merge_sorted(a.keys, b.keys, a_fence=a.fence)
        return self._filtered(keys, None, bounds)

    def _compact(self) -> None:
        runs = self._runs
        while should_merge([r.size for r in runs], self.growth, self.max_runs):
            b = runs.pop()
            a = runs.pop()
            runs.append(self._merge(a, b))
        # Expire whole-run stragglers (mainly the big oldest run) once past the slack.
        cutoff = self._cutoff()
        for i, run in enumerate(runs):
            if run.size and run.min_time < cutoff - self.slack_ms:
                values = run.values() if run.psum is not None else None
                runs[i] = self._filtered(run.keys, values, (run.min_time, run.max_time))
        self._runs = [r for r in runs if r.size]

    def entities_present(self, n_entities: int) -> npt.NDArray[np.bool_]:
        """Which entity indices ``< n_entities`` have at least one event held."""
        present = np.zeros(n_entities, dtype=bool)
        for run in self._runs:
            present[run.keys >> TIME_BITS] = True
        return present

    def remap_entities(self, remap: IntArray) -> None:
        """Renumber entities (``remap[old]``, increasing where >= 0; -1 drops the entity's events).

        An increasing mapping keeps every run sorted, so this is one pass per run.
        """
        remap = np.asarray(remap, dtype=np.int64)
        runs = []
        for run in self._runs:
            new_entity = remap[run.keys >> TIME_BITS]
            keep = new_entity >= 0
            keys = (new_entity[keep] << TIME_BITS) | (run.keys[keep] & _TIME_MASK)
            values = run.values()[keep] if run.psum is not None else None
            runs.append(_make_run(keys, values, (run.min_time, run.max_time)))
        self._runs = [r for r in runs if r.size]

    # ------------------------------------------------------------------ queries

    def positions(
        self, keys: IntArray, side: Side = "right", *, upper: Sequence[IntArray] | None = None
    ) -> list[IntArray]:
        """Per run, the number of events with key ``<= keys`` (``side="right"``) or ``< keys``.

        Ascending ``keys`` are searched fastest (numpy reuses the previous position, and the
        cache lines of neighbouring queries); callers sort their queries once and derive every
        window bound from the same order. ``upper``: the positions of bounds that are, row by
        row, no smaller than ``keys`` (e.g. ``t`` when asking ``t - w``), to step from.
        Positions are valid until the next insert.
        """
        keys = np.asarray(keys, dtype=np.int64)
        n = max(1, keys.size)
        out: list[IntArray] = []
        for r, run in enumerate(self._runs):
            if upper is not None and run.size >= _STEP_MIN_RATIO * n:
                out.append(_search_below(run.keys, upper[r], keys, side, run.fence))
            else:
                out.append(fenced_search(run.keys, run.fence, keys, side))
        return out

    def totals(
        self, positions: Sequence[IntArray], shape: tuple[int, ...]
    ) -> tuple[IntArray, IntArray | None]:
        """Count (and value sum, when tracked) of the events before ``positions`` (of queries of
        the given ``shape``)."""
        count = np.zeros(shape, dtype=np.int64)
        total = np.zeros_like(count) if self.track_values else None
        for run, idx in zip(self._runs, positions, strict=True):
            count += idx
            if total is not None:
                assert run.psum is not None
                total += run.psum[idx]
        return count, total

    def last_before_positions(self, positions: Sequence[IntArray], entity: IntArray) -> IntArray:
        """Time (UTC epoch ms) of the event just before ``positions`` in each run, when it belongs
        to ``entity``, the latest over the runs; -1 if none."""
        best = np.full(entity.shape, -1, dtype=np.int64)
        for run, idx in zip(self._runs, positions, strict=True):
            prev = idx - 1
            k = run.keys[np.maximum(prev, 0)]
            same = (prev >= 0) & ((k >> TIME_BITS) == entity)
            np.maximum(best, np.where(same, k & _TIME_MASK, -1), out=best)
        return np.where(best >= 0, best + EPOCH_2000_MS, -1)

    def cumulative(self, keys: IntArray, side: Side = "right") -> tuple[IntArray, IntArray | None]:
        """Count (and value sum) of the events with key ``<= keys`` (``"right"``) or ``< keys``."""
        keys = np.asarray(keys, dtype=np.int64)
        return self.totals(self.positions(keys, side), keys.shape)

    def cumulative_chain(
        self, keys: Sequence[IntArray], sides: Sequence[Side]
    ) -> list[tuple[IntArray, IntArray | None]]:
        """:meth:`cumulative` at several bounds per row, each bound no greater than the previous
        one for the same row (e.g. ``t``, ``t - 10 min``, ``t - 1 h``, ...): every bound after
        the first steps from the previous one's positions."""
        if len(keys) != len(sides):
            raise ValueError("one side per key array")
        results: list[tuple[IntArray, IntArray | None]] = []
        prev: list[IntArray] | None = None
        for k, side in zip(keys, sides, strict=True):
            prev = self.positions(k, side, upper=prev)
            results.append(self.totals(prev, np.shape(k)))
        return results

    def count_sum(
        self,
        entity: npt.ArrayLike,
        lo_ms: npt.ArrayLike,
        hi_ms: npt.ArrayLike,
        *,
        hi_inclusive: bool = True,
    ) -> tuple[IntArray, IntArray]:
        """Count and value sum of each entity's events with time in ``(lo, hi]`` (or ``(lo, hi)``).

        Arrays broadcast together; an empty interval (``lo >= hi``) gives 0. Without
        ``track_values`` the sum equals the count.
        """
        ent, lo, hi = np.broadcast_arrays(
            np.asarray(entity, dtype=np.int64),
            np.asarray(lo_ms, dtype=np.int64),
            np.asarray(hi_ms, dtype=np.int64),
        )
        k_lo = query_keys(ent, lo)
        k_hi = query_keys(ent, hi)
        order = np.argsort(k_hi, kind="stable") if k_hi.size > 64 else None
        if order is not None:
            k_lo, k_hi = k_lo[order], k_hi[order]
        c_hi, s_hi = self.cumulative(k_hi, "right" if hi_inclusive else "left")
        c_lo, s_lo = self.cumulative(k_lo, "right")
        count = c_hi - c_lo
        total = (s_hi - s_lo) if s_hi is not None and s_lo is not None else count.copy()
        empty = count <= 0
        count[empty] = 0
        total[empty] = 0
        if order is not None:
            out_c = np.empty_like(count)
            out_s = np.empty_like(total)
            out_c[order] = count
            out_s[order] = total
            count, total = out_c, out_s
        return count, total

    def last_before(self, entity: npt.ArrayLike, time_ms: npt.ArrayLike) -> IntArray:
        """Time (UTC epoch ms) of each entity's latest event with time ``< time_ms``, or -1."""
        ent, t = np.broadcast_arrays(np.asarray(entity, dtype=np.int64), np.asarray(time_ms, dtype=np.int64))
        return self.last_before_positions(self.positions(query_keys(ent, t), "left"), ent)
