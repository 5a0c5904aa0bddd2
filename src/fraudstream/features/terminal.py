"""Global terminal state: the terminal features, fed by every transaction and every label.

Why global: a terminal is used by customers of every input partition, so a worker keeps ONE
terminal state fed by a separate reader of all the ``input`` partitions (:meth:`observe`) and of
the ``training`` labels (:meth:`observe_labels`). Its features only look at the past with a
strict bound (the handbook's risk windows end 7 days before the transaction, the real-time
count ends strictly before it), so they are deterministic as long as the caller guarantees that,
before :meth:`compute` is called for time ``t``, the reader has observed every transaction with
time ``<= t`` and every label with ``labeled_at <= t``.

Handbook definition (``get_count_risk_rolling_window``, ``delay_period=7``): with ``d = 7`` days,
``NB_TX_nDAY`` is the number of the terminal's transactions with time in ``(t - (d+n), t - d]``
and ``RISK_nDAY`` the number of those labelled fraud divided by it (0 when there are none).
A label carries only a transaction id, so the state remembers id -> (terminal, time, fraud) for
38 days; fraud flags are kept as +1/-1 events at the *transaction's* time, so a repeated or
corrected label replaces the previous one instead of adding to it.
"""

from __future__ import annotations

from itertools import islice

import numpy as np
import numpy.typing as npt

from fraudstream.contracts.batch import TxBatch
from fraudstream.features.customer import (
    COMPACT_FIRST_AT,
    DAY_MS,
    DEFAULT_LATE_MARGIN_MS,
    MINUTE_MS,
    next_compaction,
)
from fraudstream.features.interner import Interner
from fraudstream.features.key_table import KeyTable, hash_ids
from fraudstream.features.window_store import Side, WindowStore, query_keys

__all__ = [
    "TERMINAL_FEATURES",
    "TERMINAL_HANDBOOK_FEATURES",
    "TERMINAL_REALTIME_FEATURES",
    "TerminalState",
]

#: The handbook's ``delay_period``.
DELAY_MS = 7 * DAY_MS
_WINDOW_DAYS = (1, 7, 30)
#: The oldest instant a terminal feature looks at: delay + the longest window.
TERMINAL_HORIZON_MS = DELAY_MS + max(_WINDOW_DAYS) * DAY_MS
#: How long a transaction id is remembered for its label.
LABEL_HORIZON_MS = 38 * DAY_MS
REALTIME_WINDOW_MS = 10 * MINUTE_MS
#: Labels that arrived before their transaction was observed, waiting for it.
MAX_PENDING_LABELS = 1_000_000

TERMINAL_HANDBOOK_FEATURES: list[str] = [
    name
    for n in _WINDOW_DAYS
    for name in (f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW", f"TERMINAL_ID_RISK_{n}DAY_WINDOW")
]
TERMINAL_REALTIME_FEATURES: list[str] = ["TERMINAL_ID_NB_TX_10MIN_WINDOW"]
TERMINAL_FEATURES: list[str] = TERMINAL_HANDBOOK_FEATURES + TERMINAL_REALTIME_FEATURES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class TerminalState:
    """Transactions and fraud labels per terminal over the last 37 days (plus a margin).

    Args:
        late_margin_ms: kept beyond the 37 days behind the latest transaction observed, so a
            worker lagging the reader by up to this much still gets exact features.
    """

    def __init__(self, *, late_margin_ms: int = DEFAULT_LATE_MARGIN_MS) -> None:
        horizon = TERMINAL_HORIZON_MS + int(late_margin_ms)
        self._terminals = Interner()
        self._tx = WindowStore(horizon, track_values=False)
        self._fraud = WindowStore(horizon, track_values=True)
        self._by_id = KeyTable(
            {"time": np.int64, "terminal": np.int32, "fraud": np.int8},
            max(LABEL_HORIZON_MS, horizon),
        )
        self._pending: dict[int, int] = {}  # transaction hash -> fraud flag, label came first
        self._compact_at = COMPACT_FIRST_AT

    @property
    def n_terminals(self) -> int:
        return len(self._terminals)

    @property
    def n_transactions(self) -> int:
        return self._tx.n_events

    @property
    def nbytes(self) -> int:
        """Bytes of the numpy arrays (all the state but a few Python objects)."""
        return self._tx.nbytes + self._fraud.nbytes + self._by_id.nbytes + self._terminals.nbytes

    def hold(self, time_ms: int | None) -> None:
        """Keep what queries at times ``>= time_ms`` need, however far the reader has run ahead.

        The worker calls it with the earliest event time it may still have to decide (its
        slowest partition); ``None`` lifts the hold (expiry follows the newest event again).
        """
        for store in (self._tx, self._fraud):
            store.expiry_cap_ms = time_ms
        self._by_id.expiry_cap = time_ms

    def exact_at(self, time_ms: int) -> bool:
        """Whether features at ``time_ms`` are still exact: nothing they look at was expired.

        A worker that is handed a partition far behind the ones it owned (a rebalance during a
        replay) may find the events that partition needs already dropped; it then rebuilds
        this state from the log instead of deciding on a truncated history.
        """
        since = [self._tx.complete_since_ms, self._fraud.complete_since_ms, self._by_id.complete_since]
        needed = int(time_ms) - TERMINAL_HORIZON_MS
        return all(s is None or s <= needed for s in since)

    # ------------------------------------------------------------------ reader side

    def observe(self, batch: TxBatch) -> None:
        """Record transactions (any partition). An id already observed (within 38 days, or
        earlier in the batch) is ignored, so redelivered or duplicated messages count once."""
        self.observe_transactions(batch.transaction_id, batch.terminal_id, batch.time_ms)

    def observe_transactions(
        self, transaction_ids: list[str], terminal_ids: list[str], time_ms: npt.ArrayLike
    ) -> None:
        """:meth:`observe` on plain columns."""
        n = len(transaction_ids)
        if n == 0:
            return
        h = hash_ids(transaction_ids, n)
        t = np.asarray(time_ms, dtype=np.int64)
        # Hash order: one sort serves the lookup, the in-batch repeats and the insertion.
        order = np.argsort(h, kind="stable")
        sh = h[order]
        fresh = ~self._by_id.contains(sh)
        fresh[1:] &= sh[1:] != sh[:-1]
        keep = order[fresh]
        if keep.size == 0:
            return
        term = self._terminals.lookup(terminal_ids)[keep]
        t = t[keep]
        self._tx.insert(term, t)
        self._by_id.insert_sorted_unique(sh[fresh], {"time": t, "terminal": term, "fraud": 0})
        if self._pending:
            pending = self._pending
            hits = [x for x in sh[fresh].tolist() if x in pending]
            if hits:
                labels = np.array([pending.pop(x) for x in hits], dtype=np.int8)
                self._label_hashes(np.array(hits, dtype=np.int64), labels)
        if len(self._terminals) >= self._compact_at:
            self.compact()

    def compact(self) -> None:
        """Forget the terminals this state no longer holds anything about and renumber the
        others (automatic, see :meth:`CustomerState.compact`). Features are unchanged."""
        n = len(self._terminals)
        live = self._tx.entities_present(n) | self._fraud.entities_present(n)
        for column in self._by_id.column_values("terminal"):
            live[column] = True
        new_index = self._terminals.retain(live)
        self._tx.remap_entities(new_index)
        self._fraud.remap_entities(new_index)

        def renumber(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {**columns, "terminal": new_index[columns["terminal"]].astype(np.int32)}

        self._by_id.rewrite(lambda keys: keys, renumber)
        self._compact_at = next_compaction(len(self._terminals))

    def observe_labels(self, transaction_ids: list[str], is_fraud: npt.ArrayLike) -> None:
        """Record labels. A later label for the same id replaces the earlier one (within a call,
        the last one wins). A label for an id not observed yet (the reader of ``training`` can
        be ahead of a partition of ``input``) waits until that transaction is observed; the
        waiting room holds at most ``MAX_PENDING_LABELS`` ids, oldest dropped first."""
        n = len(transaction_ids)
        if n == 0:
            return
        h = hash_ids(transaction_ids, n)
        fraud = np.asarray(is_fraud, dtype=bool).astype(np.int8)
        if n > 1:
            _, last_rev = np.unique(h[::-1], return_index=True)
            last = n - 1 - last_rev
            h, fraud = h[last], fraud[last]
        unknown = self._label_hashes(h, fraud)
        if unknown.any():
            pending = self._pending
            pending.update(zip(h[unknown].tolist(), fraud[unknown].tolist(), strict=True))
            # Oldest first, all at once: popping the first key one at a time rescans the deleted
            # slots at the front of the dict each time (15 us a label once the room is full).
            excess = len(pending) - MAX_PENDING_LABELS
            if excess > 0:
                for old in list(islice(pending, excess)):
                    del pending[old]

    def _label_hashes(self, h: IntArray, fraud: npt.NDArray[np.int8]) -> npt.NDArray[np.bool_]:
        """Apply labels to known transactions (unique hashes); return the mask of unknown ones."""
        run_of, pos = self._by_id.locate(h)
        known = run_of >= 0
        old = self._by_id.gather(run_of, pos, "fraud")
        delta = fraud.astype(np.int64) - old.astype(np.int64)
        changed = known & (delta != 0)
        if changed.any():
            term = self._by_id.gather(run_of, pos, "terminal").astype(np.int64)
            time = self._by_id.gather(run_of, pos, "time")
            self._fraud.insert(term[changed], time[changed], delta[changed])
            self._by_id.assign(np.where(changed, run_of, -1), pos, "fraud", fraud)
        return ~known

    # ------------------------------------------------------------------ worker side

    def compute(self, terminal_ids: list[str], time_ms: npt.ArrayLike) -> dict[str, FloatArray]:
        """Terminal features of transactions at ``terminal_ids`` and ``time_ms`` (no state change).

        ``TERMINAL_ID_NB_TX_10MIN_WINDOW`` counts the terminal's other transactions with time in
        ``[t - 10 min, t)``.
        """
        n = len(terminal_ids)
        t = np.asarray(time_ms, dtype=np.int64)
        term = self._terminals.lookup(terminal_ids, add=False)
        # Sort the queries once: every bound below is a monotone shift of this order, and
        # ascending queries make the searches much faster on big runs.
        order = np.argsort(query_keys(term, t), kind="stable")
        ts = t[order]
        es = term[order]

        # Bounds per row, each no later than the previous one (the stores step between them).
        bounds: list[tuple[int, Side]] = [
            (0, "left"),
            (REALTIME_WINDOW_MS, "left"),
            (DELAY_MS, "right"),
            *((DELAY_MS + days * DAY_MS, "right") for days in _WINDOW_DAYS),
        ]
        keys = [query_keys(es, ts - shift) for shift, _ in bounds]
        sides = [side for _, side in bounds]
        counts = [c for c, _ in self._tx.cumulative_chain(keys, sides)]
        # Frauds only matter for the delayed windows (bounds 2 and after).
        frauds = [None, None, *(f for _, f in self._fraud.cumulative_chain(keys[2:], sides[2:]))]

        sorted_out: dict[str, FloatArray] = {
            "TERMINAL_ID_NB_TX_10MIN_WINDOW": (counts[0] - counts[1]).astype(np.float64)
        }
        end_count, end_fraud = counts[2], frauds[2]
        assert end_fraud is not None
        for i, days in enumerate(_WINDOW_DAYS, start=3):
            start_fraud = frauds[i]
            assert start_fraud is not None
            nb = end_count - counts[i]
            nb_fraud = end_fraud - start_fraud
            sorted_out[f"TERMINAL_ID_NB_TX_{days}DAY_WINDOW"] = nb.astype(np.float64)
            sorted_out[f"TERMINAL_ID_RISK_{days}DAY_WINDOW"] = np.where(
                nb > 0, nb_fraud / np.maximum(nb, 1), 0.0
            )

        out: dict[str, FloatArray] = {}
        for name in TERMINAL_FEATURES:
            back = np.empty(n, dtype=np.float64)
            back[order] = sorted_out[name]
            out[name] = back
        return out
