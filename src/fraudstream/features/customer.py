"""Per-partition customer state: the customer features, computed a whole batch at a time.

Why per partition: the ``input`` topic is keyed by customer, so a worker that owns a partition
sees every transaction of its customers, in order, and nobody else needs that state. It is
rebuilt after a rebalance or a restart by replaying the partition (:meth:`CustomerState.replay`),
so it is never persisted.

Semantics (the handbook's ``rolling(window)`` on each customer's transactions, "including the
current one"): for row ``i`` with time ``t`` and window ``w``, the rows ``j`` of the same
customer that are at or before ``i`` in stream order with ``t - w < t_j <= t``. A later row of
the same batch with the same customer and the same time does *not* count for an earlier one:
the batch is stably sorted by ``(customer, time)``, so position within the sorted batch is
stream order among ties and the in-batch part of a window is a difference of positions.
Earlier batches live in a :class:`~fraudstream.features.window_store.WindowStore`.

* ``CUSTOMER_ID_NB_TX_{10MIN,1HOUR,1DAY,7DAY,30DAY}_WINDOW``: that count;
  ``CUSTOMER_ID_AVG_AMOUNT_{1,7,30}DAY_WINDOW`` / ``CUSTOMER_ID_SUM_AMOUNT_{10MIN,1HOUR}_WINDOW``:
  mean / sum of ``tx_amount`` over it, from exact integer cents.
* ``CUSTOMER_SECONDS_SINCE_PREV_TX``: ``t`` minus the latest time ``<= t`` among the customer's
  earlier rows (stream order), in seconds; -1 when there is none less than 30 days before.
* ``AMOUNT_TO_CUSTOMER_AVG_30DAY``: ``tx_amount / CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW``
  (0 when that average is 0, i.e. only zero amounts).
* ``CUSTOMER_FIRST_TIME_AT_TERMINAL``: 0 when an earlier row (stream order) of the customer at
  the same terminal has a time after ``t - 30 days``, else 1.

Rows are expected in non-decreasing time order (a partition's natural order). A batch that
goes back in time is processed as consecutive non-decreasing segments, which keeps the
definitions above exact for late rows too (an event later in the stream never counts, an
earlier one counts when its time is in the window), as long as a row is at most
``late_margin_ms`` behind the latest time already seen.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fraudstream.contracts.batch import EPOCH_2000_MS, TxBatch
from fraudstream.features.interner import Interner
from fraudstream.features.key_table import KeyTable, hash_ids
from fraudstream.features.window_store import MAX_ENTITIES, TIME_BITS, WindowStore, pack_keys

__all__ = [
    "CUSTOMER_FEATURES",
    "CUSTOMER_HANDBOOK_FEATURES",
    "CUSTOMER_REALTIME_FEATURES",
    "CustomerState",
]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: Longest customer window; also how long duplicates are remembered.
CUSTOMER_HORIZON_MS = 30 * DAY_MS
#: How late (behind the latest event seen) a batch may be and still get exact features.
DEFAULT_LATE_MARGIN_MS = DAY_MS

_TIME_MASK = (1 << TIME_BITS) - 1
_TERMINAL_BITS = 32
_TERMINAL_MASK = (1 << _TERMINAL_BITS) - 1
#: Interned ids are renumbered (forgetting those with nothing held) when their count reaches
#: this, then twice the number kept: indices stay dense, below the stores' 2**22 limit.
COMPACT_FIRST_AT = 1 << 20


def next_compaction(live: int) -> int:
    """Id count at which to compact next, given the ``live`` ids kept by the last compaction."""
    limit = (3 * MAX_ENTITIES) // 4
    target = max(COMPACT_FIRST_AT, 2 * live)
    if target <= limit:
        return target
    # Close to the limit: compact at it, unless the live ids alone reach it (then the stores
    # raise a clear error at MAX_ENTITIES rather than compacting at every batch).
    return limit if live < limit else MAX_ENTITIES


CUSTOMER_HANDBOOK_FEATURES: list[str] = [
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_7DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_30DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
]
CUSTOMER_REALTIME_FEATURES: list[str] = [
    "CUSTOMER_ID_NB_TX_10MIN_WINDOW",
    "CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW",
    "CUSTOMER_ID_NB_TX_1HOUR_WINDOW",
    "CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW",
    "CUSTOMER_SECONDS_SINCE_PREV_TX",
    "AMOUNT_TO_CUSTOMER_AVG_30DAY",
    "CUSTOMER_FIRST_TIME_AT_TERMINAL",
]
CUSTOMER_FEATURES: list[str] = CUSTOMER_HANDBOOK_FEATURES + CUSTOMER_REALTIME_FEATURES

# (window, count feature, amount feature, amount is a mean (else a sum))
_WINDOWS: list[tuple[int, str, str, bool]] = [
    (10 * MINUTE_MS, "CUSTOMER_ID_NB_TX_10MIN_WINDOW", "CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW", False),
    (HOUR_MS, "CUSTOMER_ID_NB_TX_1HOUR_WINDOW", "CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW", False),
    (DAY_MS, "CUSTOMER_ID_NB_TX_1DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW", True),
    (7 * DAY_MS, "CUSTOMER_ID_NB_TX_7DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW", True),
    (30 * DAY_MS, "CUSTOMER_ID_NB_TX_30DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW", True),
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class CustomerState:
    """Customer windows, previous-transaction and first-time-at-terminal state, duplicate ids.

    One object per input partition owned by the worker. All memory is numpy arrays.

    Args:
        late_margin_ms: events are kept for 30 days plus this margin behind the latest event
            time seen, so a batch up to this late still gets exact features.
    """

    def __init__(self, *, late_margin_ms: int = DEFAULT_LATE_MARGIN_MS) -> None:
        horizon = CUSTOMER_HORIZON_MS + int(late_margin_ms)
        self._customers = Interner()
        self._terminals = Interner()
        # (customer, time) -> amount in cents.
        self._events = WindowStore(horizon, track_values=True)
        # (customer << 32 | terminal) -> last time seen.
        self._pairs = KeyTable({"time": np.int64}, horizon)
        # hash(transaction_id) -> time, for duplicate detection.
        self._ids = KeyTable({"time": np.int64}, CUSTOMER_HORIZON_MS)
        self._compact_at = COMPACT_FIRST_AT

    # ------------------------------------------------------------------ introspection

    @property
    def n_customers(self) -> int:
        return len(self._customers)

    @property
    def n_events(self) -> int:
        return self._events.n_events

    @property
    def nbytes(self) -> int:
        """Bytes of the numpy arrays (all the state but a few Python objects)."""
        parts = (self._events, self._pairs, self._ids, self._customers, self._terminals)
        return sum(part.nbytes for part in parts)

    # ------------------------------------------------------------------ duplicates

    def seen(self, transaction_ids: list[str]) -> npt.NDArray[np.bool_]:
        """Which ids were already processed by this state (within the last 30 days, at least, of
        event time) or appear earlier in the same list. Does not record anything: recording
        happens in the update.

        Ids are compared by their 64-bit hash (see :mod:`~fraudstream.features.key_table`): a
        distinct id is taken for a duplicate with probability about ``n / 2**64`` per lookup
        (``n`` ids held), i.e. never in practice.
        """
        n = len(transaction_ids)
        h = hash_ids(transaction_ids, n)
        order = np.argsort(h, kind="stable")  # equal ids keep their batch order
        sh = h[order]
        dup_sorted = self._ids.contains(sh)  # ascending queries: no second sort
        dup_sorted[1:] |= sh[1:] == sh[:-1]
        dup = np.empty(n, dtype=bool)
        dup[order] = dup_sorted
        return dup

    # ------------------------------------------------------------------ update

    def update_and_compute(self, batch: TxBatch) -> dict[str, FloatArray]:
        """Add the batch to the state and return every customer feature for every row, in the
        batch's order (see the module docstring for the window semantics)."""
        return self._update(batch, compute=True)

    def replay(self, batch: TxBatch) -> None:
        """Add the batch to the state without computing features (state restoration).

        Replaying a partition's batches leaves the same state as processing them.
        """
        self._update(batch, compute=False)

    def _update(self, batch: TxBatch, *, compute: bool) -> dict[str, FloatArray]:
        n = len(batch)
        if n == 0:
            return {name: np.zeros(0, dtype=np.float64) for name in CUSTOMER_FEATURES}
        if len(self._terminals) >= 1 << _TERMINAL_BITS:
            raise ValueError("too many terminals for one customer state (2**32)")
        cust = self._customers.lookup(batch.customer_id)
        term = self._terminals.lookup(batch.terminal_id)
        time_ms = np.asarray(batch.time_ms, dtype=np.int64)
        cents = np.asarray(batch.amount_cents, dtype=np.int64)
        amount = np.asarray(batch.tx_amount, dtype=np.float64)
        id_hash = hash_ids(batch.transaction_id, n)

        breaks = np.flatnonzero(time_ms[1:] < time_ms[:-1]) + 1
        if breaks.size == 0:
            out = self._segment(cust, term, time_ms, cents, amount, id_hash, compute)
        else:
            parts: list[dict[str, FloatArray]] = []
            bounds = [0, *breaks.tolist(), n]
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                cols = (cust[a:b], term[a:b], time_ms[a:b], cents[a:b], amount[a:b], id_hash[a:b])
                parts.append(self._segment(*cols, compute))
            out = (
                {name: np.concatenate([p[name] for p in parts]) for name in CUSTOMER_FEATURES}
                if compute
                else {}
            )
        if max(len(self._customers), len(self._terminals)) >= self._compact_at:
            self.compact()
        return out

    def compact(self) -> None:
        """Forget the customers and terminals this state no longer holds anything about and
        renumber the others (automatic; cheap: one pass over the state, increasing renumbering
        keeps every run sorted). Features are unchanged."""
        live_customers = self._events.entities_present(len(self._customers))
        live_terminals = np.zeros(len(self._terminals), dtype=bool)
        for keys in self._pairs.run_keys():
            with_customer = live_customers[keys >> _TERMINAL_BITS]
            live_terminals[keys[with_customer] & _TERMINAL_MASK] = True
        new_customer = self._customers.retain(live_customers)
        new_terminal = self._terminals.retain(live_terminals)
        self._events.remap_entities(new_customer)

        def renumber_pairs(keys: IntArray) -> IntArray:
            c = new_customer[keys >> _TERMINAL_BITS]
            t = new_terminal[keys & _TERMINAL_MASK]
            return np.where((c >= 0) & (t >= 0), (c << _TERMINAL_BITS) | t, -1)

        self._pairs.rewrite(renumber_pairs)
        self._compact_at = next_compaction(max(len(self._customers), len(self._terminals)))

    def _segment(
        self,
        cust: IntArray,
        term: IntArray,
        time_ms: IntArray,
        cents: IntArray,
        amount: FloatArray,
        id_hash: IntArray,
        compute: bool,
    ) -> dict[str, FloatArray]:
        """One non-decreasing-time run of rows: compute (optionally), then insert."""
        n = len(time_ms)
        keys = pack_keys(cust, time_ms)
        order = np.argsort(keys, kind="stable")  # stream order kept among equal keys
        sk = keys[order]
        sc = cents[order]
        pairs = (cust << _TERMINAL_BITS) | term
        porder = np.argsort(pairs, kind="stable")
        sp = pairs[porder]
        spt = time_ms[porder]
        same_pair = np.zeros(n, dtype=bool)
        same_pair[1:] = sp[1:] == sp[:-1]

        out: dict[str, FloatArray] = {}
        if compute:
            out = self._compute(sk, sc, order, amount, sp, spt, same_pair, porder)

        # ---- insert (after the queries: the store holds earlier rows only while computing)
        self._events.insert_sorted(sk, sc)
        last_of_pair = np.ones(n, dtype=bool)
        last_of_pair[:-1] = ~same_pair[1:]
        # In a non-decreasing segment the last row of a pair has its latest time.
        self._pairs.insert_sorted_unique(sp[last_of_pair], {"time": spt[last_of_pair]})
        self._ids.insert(id_hash, {"time": time_ms})
        return out

    def _compute(
        self,
        sk: IntArray,
        sc: IntArray,
        order: IntArray,
        amount: FloatArray,
        sp: IntArray,
        spt: IntArray,
        same_pair: npt.NDArray[np.bool_],
        porder: IntArray,
    ) -> dict[str, FloatArray]:
        n = len(sk)
        store = self._events
        rel = sk & _TIME_MASK
        pos = np.arange(n, dtype=np.int64)
        bpsum = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sc, out=bpsum[1:])
        here = bpsum[1:]  # in-batch sum up to and including each sorted row

        # Window starts: the first key inside (t - w, t] of the same customer (clamped at the
        # entity's first key); ascending like ``sk``, and decreasing with w (for the chain).
        starts = [sk - np.minimum(width, rel + 1) for width, *_ in _WINDOWS]
        hi_pos = store.positions(sk, "right")
        hi_c, hi_s = store.totals(hi_pos, sk.shape)
        assert hi_s is not None
        sorted_out: dict[str, FloatArray] = {}
        upper = hi_pos
        for (_, count_name, amount_name, is_mean), lo in zip(_WINDOWS, starts, strict=True):
            upper = store.positions(lo, "right", upper=upper)
            lo_c, lo_s = store.totals(upper, sk.shape)
            assert lo_s is not None
            in_lo = np.searchsorted(sk, lo, side="right")
            count = (hi_c - lo_c) + (pos + 1 - in_lo)
            total = (hi_s - lo_s) + (here - bpsum[in_lo])
            sorted_out[count_name] = count.astype(np.float64)
            euros = total / 100.0
            sorted_out[amount_name] = euros / count if is_mean else euros

        # ---- seconds since the previous transaction (<= t, before in stream order): the
        # batch's own predecessor, or the event just before the ``hi`` positions in the store.
        ent = sk >> TIME_BITS
        same_cust = np.zeros(n, dtype=bool)
        same_cust[1:] = ent[1:] == ent[:-1]
        prev = np.full(n, -1, dtype=np.int64)
        prev[1:] = np.where(same_cust[1:], rel[:-1] + EPOCH_2000_MS, -1)
        np.maximum(prev, store.last_before_positions(hi_pos, ent), out=prev)
        t_sorted = rel + EPOCH_2000_MS
        gap = t_sorted - prev
        valid = (prev >= 0) & (gap < CUSTOMER_HORIZON_MS)
        sorted_out["CUSTOMER_SECONDS_SINCE_PREV_TX"] = np.where(valid, gap / 1000.0, -1.0)

        # ---- scatter back to the batch order
        out: dict[str, FloatArray] = {}
        for name, values in sorted_out.items():
            back = np.empty(n, dtype=np.float64)
            back[order] = values
            out[name] = back
        avg30 = out["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]
        safe = avg30 > 0
        out["AMOUNT_TO_CUSTOMER_AVG_30DAY"] = np.where(safe, amount / np.where(safe, avg30, 1.0), 0.0)

        # ---- first time at this terminal (in the last 30 days)
        prev_pair = np.full(n, -1, dtype=np.int64)
        prev_pair[1:] = np.where(same_pair[1:], spt[:-1], -1)
        found, cols = self._pairs.lookup(sp)
        prev_pair = np.maximum(prev_pair, np.where(found, cols["time"], -1))
        seen_recently = (prev_pair >= 0) & (prev_pair > spt - CUSTOMER_HORIZON_MS)
        first = np.empty(n, dtype=np.float64)
        first[porder] = np.where(seen_recently, 0.0, 1.0)
        out["CUSTOMER_FIRST_TIME_AT_TERMINAL"] = first
        return {name: out[name] for name in CUSTOMER_FEATURES}
