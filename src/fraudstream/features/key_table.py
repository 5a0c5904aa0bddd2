"""A compact ``int64 key -> row`` table with time-based expiry, in sorted runs like the window store.

Why: the feature states need three maps that would be large and slow as Python dicts at scale
(tens of millions of entries): transaction ids already processed (duplicate detection),
the last time each ``(customer, terminal)`` pair was seen, and transaction id -> (terminal,
time, label) for the labels. Here each map is a few sorted ``int64`` key arrays with aligned
numpy columns, looked up for a whole batch with ``np.searchsorted``.

Each key is unique within a run; when the same key is inserted again, the row with the latest
``time`` wins (ties: the newest). Rows whose ``time`` is older than ``watermark - horizon`` are
dropped lazily (on merges, and by rewriting a run once its oldest row is past a slack).

Transaction ids are strings: they are stored as their 64-bit Python ``hash`` (SipHash, salted
per process, which is fine because the state is rebuilt by replay, never persisted). Two distinct
ids sharing a hash is possible but improbable: about ``n**2 / 2**65`` for ``n`` live ids
(3e-6 for 10 million).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fraudstream.features.sorted_search import build_fence, fenced_search
from fraudstream.features.window_store import merge_sorted, should_merge

__all__ = ["KeyTable", "hash_ids"]

IntArray = npt.NDArray[np.int64]
ColumnsFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def hash_ids(ids: Iterable[str], count: int = -1) -> IntArray:
    """64-bit hashes of string ids (one C-level ``hash`` call each, no Python loop body)."""
    return np.fromiter(map(hash, ids), dtype=np.int64, count=count)


def _ascending(keys: IntArray) -> tuple[IntArray, IntArray | None]:
    """Sorted copy of a large query array (and the order), since ``np.searchsorted`` with
    ascending needles touches far fewer cache lines of a big run than random ones."""
    if keys.size <= 256 or bool((keys[1:] >= keys[:-1]).all()):
        return keys, None
    order = np.argsort(keys)
    return keys[order], order


def _unsort(values: np.ndarray, order: IntArray | None) -> np.ndarray:
    if order is None:
        return values
    out = np.empty_like(values)
    out[order] = values
    return out


@dataclass(slots=True)
class _Run:
    keys: IntArray
    columns: dict[str, np.ndarray]
    min_time: int
    max_time: int
    fence: IntArray | None

    @property
    def size(self) -> int:
        return len(self.keys)


class KeyTable:
    """Unique ``int64`` keys with named numpy columns, one of them the row's ``time`` (ms).

    Args:
        columns: column name -> dtype; must include ``"time"`` (int64, UTC epoch ms).
        horizon_ms: rows with ``time < watermark - horizon_ms`` may be dropped.
        growth, max_runs, slack_ms: as in :class:`~fraudstream.features.window_store.WindowStore`.
    """

    def __init__(
        self,
        columns: Mapping[str, npt.DTypeLike],
        horizon_ms: int,
        *,
        growth: int = 4,
        max_runs: int = 12,
        slack_ms: int | None = None,
    ) -> None:
        if "time" not in columns:
            raise ValueError("a KeyTable needs a 'time' column")
        self.dtypes = {name: np.dtype(dt) for name, dt in columns.items()}
        self.horizon_ms = int(horizon_ms)
        self.growth = int(growth)
        self.max_runs = int(max_runs)
        self.slack_ms = int(slack_ms if slack_ms is not None else max(1, horizon_ms // 5))
        self._runs: list[_Run] = []
        self._watermark: int | None = None
        #: When set, expiry counts back from min(watermark, cap) (same unit as ``time``).
        self.expiry_cap: int | None = None
        #: Every row with a time >= this is still held (None: nothing was ever dropped).
        self.complete_since: int | None = None

    @property
    def n_rows(self) -> int:
        return sum(r.size for r in self._runs)

    @property
    def n_runs(self) -> int:
        return len(self._runs)

    @property
    def nbytes(self) -> int:
        return sum(
            r.keys.nbytes
            + sum(c.nbytes for c in r.columns.values())
            + (r.fence.nbytes if r.fence is not None else 0)
            for r in self._runs
        )

    # ------------------------------------------------------------------ insert

    def insert(self, keys: npt.ArrayLike, columns: Mapping[str, npt.ArrayLike]) -> None:
        """Insert or replace rows (the latest ``time`` wins for a repeated key)."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return
        cols = {
            name: np.broadcast_to(np.asarray(columns[name], dtype=dt), keys.shape)
            for name, dt in self.dtypes.items()
        }
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        if len(keys) > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
            # Repeated keys: sort by key then time, keep the last row of each key (latest time,
            # ties: last given).
            order = np.lexsort((cols["time"], keys))
            sorted_keys = keys[order]
            last = np.ones(len(keys), dtype=bool)
            last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
            sorted_keys = sorted_keys[last]
            order = order[last]
        self._add_run(sorted_keys, {name: np.ascontiguousarray(col[order]) for name, col in cols.items()})

    def insert_sorted_unique(self, keys: IntArray, columns: Mapping[str, npt.ArrayLike]) -> None:
        """Insert rows whose keys are already ascending and unique (skips the sort)."""
        if len(keys) == 0:
            return
        cols = {
            name: np.ascontiguousarray(np.broadcast_to(np.asarray(columns[name], dtype=dt), keys.shape))
            for name, dt in self.dtypes.items()
        }
        self._add_run(np.ascontiguousarray(keys, dtype=np.int64), cols)

    def _add_run(self, keys: IntArray, cols: dict[str, np.ndarray]) -> None:
        run = self._make_run(keys, cols)
        self._watermark = run.max_time if self._watermark is None else max(self._watermark, run.max_time)
        self._runs.append(run)
        self._compact()

    @staticmethod
    def _make_run(
        keys: IntArray, cols: dict[str, np.ndarray], time_range: tuple[int, int] | None = None
    ) -> _Run:
        """``time_range``: known time bounds (the minimum may be a lower bound), saving a pass."""
        if time_range is None:
            times = cols["time"]
            time_range = (int(times.min()), int(times.max())) if len(times) else (0, 0)
        return _Run(
            keys=keys, columns=cols, min_time=time_range[0], max_time=time_range[1], fence=build_fence(keys)
        )

    def _cutoff(self) -> int:
        assert self._watermark is not None
        wm = self._watermark if self.expiry_cap is None else min(self._watermark, self.expiry_cap)
        return wm - self.horizon_ms

    def _filtered(self, keys: IntArray, cols: dict[str, np.ndarray], time_range: tuple[int, int]) -> _Run:
        cutoff = self._cutoff()
        lo, hi = time_range
        if len(keys) and lo < cutoff:
            keep = cols["time"] >= cutoff
            keys = keys[keep]
            cols = {name: col[keep] for name, col in cols.items()}
            lo = cutoff
            self.complete_since = max(cutoff, self.complete_since or cutoff)
        return self._make_run(keys, cols, (lo, hi))

    def _merge(self, a: _Run, b: _Run) -> _Run:
        names = list(self.dtypes)
        keys, merged = merge_sorted(a.keys, b.keys, [(a.columns[n], b.columns[n]) for n in names], a.fence)
        cols = dict(zip(names, merged, strict=True))
        # Each run has unique keys, so a repeated key is exactly two adjacent rows: a's then b's.
        dup = np.flatnonzero(keys[1:] == keys[:-1])
        if dup.size:
            times = cols["time"]
            older_wins = dup[times[dup] > times[dup + 1]]
            for col in cols.values():
                col[older_wins + 1] = col[older_wins]
            keep = np.ones(len(keys), dtype=bool)
            keep[dup] = False
            keys = keys[keep]
            cols = {n: c[keep] for n, c in cols.items()}
        return self._filtered(keys, cols, (min(a.min_time, b.min_time), max(a.max_time, b.max_time)))

    def _compact(self) -> None:
        runs = self._runs
        while should_merge([r.size for r in runs], self.growth, self.max_runs):
            b = runs.pop()
            a = runs.pop()
            runs.append(self._merge(a, b))
        cutoff = self._cutoff()
        for i, run in enumerate(runs):
            if run.size and run.min_time < cutoff - self.slack_ms:
                runs[i] = self._filtered(run.keys, run.columns, (run.min_time, run.max_time))
        self._runs = [r for r in runs if r.size]

    def run_keys(self) -> list[IntArray]:
        """The keys of every run (read-only use)."""
        return [run.keys for run in self._runs]

    def column_values(self, name: str) -> list[np.ndarray]:
        """Column ``name`` of every run (read-only use)."""
        return [run.columns[name] for run in self._runs]

    def rewrite(self, keys_fn: Callable[[IntArray], IntArray], columns_fn: ColumnsFn | None = None) -> None:
        """Replace every key by ``keys_fn(keys)`` (and columns by ``columns_fn``) and drop the
        rows whose new key is -1. The mapping must be increasing on the kept keys (so runs stay
        sorted and unique): used to renumber the entities packed in the keys."""
        runs = []
        for run in self._runs:
            new_keys = keys_fn(run.keys)
            keep = new_keys != -1
            cols = columns_fn(run.columns) if columns_fn is not None else run.columns
            cols = {name: col[keep] for name, col in cols.items()}
            runs.append(self._make_run(new_keys[keep], cols, (run.min_time, run.max_time)))
        self._runs = [r for r in runs if r.size]

    # ------------------------------------------------------------------ queries

    def locate(self, keys: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """``(run, position)`` of each key's latest row (``run == -1`` when absent).

        Valid until the next insert (runs merge then); used for in-place column updates.
        """
        keys, order = _ascending(np.asarray(keys, dtype=np.int64))
        best_run = np.full(keys.shape, -1, dtype=np.int64)
        best_pos = np.zeros(keys.shape, dtype=np.int64)
        best_time = np.full(keys.shape, np.iinfo(np.int64).min, dtype=np.int64)
        for r, run in enumerate(self._runs):
            pos = np.minimum(fenced_search(run.keys, run.fence, keys), run.size - 1)
            hit = run.keys[pos] == keys
            t = run.columns["time"][pos]
            better = hit & ((best_run < 0) | (t >= best_time))
            best_run[better] = r
            best_pos[better] = pos[better]
            best_time[better] = t[better]
        return _unsort(best_run, order), _unsort(best_pos, order)

    def gather(self, run_of: IntArray, pos: IntArray, name: str) -> np.ndarray:
        """Column ``name`` at locations from :meth:`locate` (0 where ``run == -1``)."""
        out = np.zeros(run_of.shape, dtype=self.dtypes[name])
        for r, run in enumerate(self._runs):
            sel = run_of == r
            if sel.any():
                out[sel] = run.columns[name][pos[sel]]
        return out

    def lookup(self, keys: npt.ArrayLike) -> tuple[npt.NDArray[np.bool_], dict[str, np.ndarray]]:
        """Whether each key is present, and its latest row's columns (zeros when absent)."""
        run_of, pos = self.locate(keys)
        return run_of >= 0, {name: self.gather(run_of, pos, name) for name in self.dtypes}

    def contains(self, keys: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each key is present (any run)."""
        keys, order = _ascending(np.asarray(keys, dtype=np.int64))
        found = np.zeros(keys.shape, dtype=bool)
        for run in self._runs:
            pos = np.minimum(fenced_search(run.keys, run.fence, keys), run.size - 1)
            found |= run.keys[pos] == keys
        return _unsort(found, order)

    def assign(self, run_of: IntArray, pos: IntArray, name: str, values: npt.ArrayLike) -> None:
        """Overwrite column ``name`` at locations from :meth:`locate` (entries with run -1 are skipped)."""
        values = np.broadcast_to(np.asarray(values, dtype=self.dtypes[name]), run_of.shape)
        for r, run in enumerate(self._runs):
            sel = run_of == r
            if sel.any():
                run.columns[name][pos[sel]] = values[sel]
