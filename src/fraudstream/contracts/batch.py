"""A batch of validated transactions in columnar form: the input of the pure core.

Times are UTC epoch milliseconds (int64) and amounts are also kept in integer cents, so
windowed sums are exact; strings stay Python lists (they are interned by the stores).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import cast

import numpy as np

from fraudstream.contracts.messages import Transaction

#: Column getters for ``map`` over decoded transactions (or labels, for ``TX_ID``).
TX_ID = operator.attrgetter("transaction_id")
CUSTOMER_ID = operator.attrgetter("customer_id")
TERMINAL_ID = operator.attrgetter("terminal_id")
AMOUNT = operator.attrgetter("tx_amount")


def id_strings(ids: list[str | int]) -> list[str]:
    """Ids as strings (an integer in a message is read as its decimal); no copy when they are.
    One C-level pass each (this runs for every transaction, several times)."""
    if set(map(type, ids)) <= {str}:
        return cast(list[str], ids)
    return [str(i) for i in ids]


#: The earliest event time accepted (feature stores pack times relative to it).
EPOCH_2000_MS = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000)


@dataclass
class TxBatch:
    transaction_id: list[str]
    customer_id: list[str]
    terminal_id: list[str]
    time_ms: np.ndarray  # int64, UTC epoch milliseconds
    tx_amount: np.ndarray  # float64, as sent
    amount_cents: np.ndarray  # int64, round(tx_amount * 100)
    records: list[Transaction] = field(default_factory=list)  # the decoded messages, in order

    def __len__(self) -> int:
        return len(self.transaction_id)

    @classmethod
    def from_transactions(cls, txs: list[Transaction], time_ms: list[int] | None = None) -> TxBatch:
        """Columns of decoded transactions; ``time_ms``, when given, holds their event times
        (``round(tx_datetime.timestamp() * 1000)``, e.g. as computed during validation)."""
        n = len(txs)
        amounts = np.fromiter(map(AMOUNT, txs), dtype=np.float64, count=n)
        if time_ms is None:
            times = np.fromiter(
                (round(t.tx_datetime.timestamp() * 1000) for t in txs), dtype=np.int64, count=n
            )
        else:
            times = np.array(time_ms, dtype=np.int64)
            if times.shape != (n,):
                raise ValueError("time_ms must hold one time per transaction")
        return cls(
            transaction_id=id_strings(list(map(TX_ID, txs))),
            customer_id=id_strings(list(map(CUSTOMER_ID, txs))),
            terminal_id=id_strings(list(map(TERMINAL_ID, txs))),
            time_ms=times,
            tx_amount=amounts,
            amount_cents=np.rint(amounts * 100).astype(np.int64),
            records=txs,
        )

    def take(self, idx: np.ndarray) -> TxBatch:
        """The rows at positions ``idx`` (e.g. one partition's share, or a time-sorted order)."""
        ids = idx.tolist()
        return TxBatch(
            transaction_id=[self.transaction_id[i] for i in ids],
            customer_id=[self.customer_id[i] for i in ids],
            terminal_id=[self.terminal_id[i] for i in ids],
            time_ms=self.time_ms[idx],
            tx_amount=self.tx_amount[idx],
            amount_cents=self.amount_cents[idx],
            records=[self.records[i] for i in ids] if self.records else [],
        )

    def window(self, start: int, stop: int) -> TxBatch:
        """The rows ``start:stop`` (a slice of each column)."""
        return TxBatch(
            transaction_id=self.transaction_id[start:stop],
            customer_id=self.customer_id[start:stop],
            terminal_id=self.terminal_id[start:stop],
            time_ms=self.time_ms[start:stop],
            tx_amount=self.tx_amount[start:stop],
            amount_cents=self.amount_cents[start:stop],
            records=self.records[start:stop],
        )

    @classmethod
    def concat(cls, batches: list[TxBatch]) -> TxBatch:
        """The rows of ``batches``, one after the other."""
        if len(batches) == 1:
            return batches[0]
        return cls(
            transaction_id=list(chain.from_iterable(b.transaction_id for b in batches)),
            customer_id=list(chain.from_iterable(b.customer_id for b in batches)),
            terminal_id=list(chain.from_iterable(b.terminal_id for b in batches)),
            time_ms=np.concatenate([b.time_ms for b in batches]),
            tx_amount=np.concatenate([b.tx_amount for b in batches]),
            amount_cents=np.concatenate([b.amount_cents for b in batches]),
            records=list(chain.from_iterable(b.records for b in batches)),
        )
