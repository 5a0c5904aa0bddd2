"""Suspicious decisions into ``fraudulent_transactions``: COPY, then an idempotent insert.

Rows are COPYed into a session temp table and moved with ``INSERT ... ON CONFLICT
(transaction_id) DO NOTHING`` in one transaction per batch: a batch replayed after a crash
(or a duplicate ``transaction_id`` on another partition) adds no second row.

Rows are written before the batch's Kafka transaction commits, so a batch can leave rows and
then abort. Ownership of a partition is therefore fenced here too (table ``partition_owners``):
:meth:`SuspiciousSink.claim` bumps the partition's epoch and deletes the rows of attempts past
the committed offset; every write checks, in its own transaction, that its epochs still hold.
A worker that lost a partition (paused past its session timeout, cut off) gets
:class:`Fenced` instead of adding rows for decisions its successor makes again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import psycopg
import structlog
from psycopg import sql
from psycopg.types.json import Jsonb

log = structlog.get_logger(__name__)
T = TypeVar("T")

COLUMNS = (
    "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "currency",
    "channel", "merchant_category", "country", "lat", "lon", "score", "decision", "reasons",
    "features", "model_version", "rules_version", "detected_at", "source_partition", "source_offset",
)
_COLS = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
_COPY_INCOMING = sql.SQL("COPY incoming_suspicious ({}) FROM STDIN").format(_COLS)
_MOVE_INCOMING = sql.SQL(
    "INSERT INTO fraudulent_transactions ({cols}) SELECT {cols} FROM incoming_suspicious "
    "ON CONFLICT (transaction_id) DO NOTHING"
).format(cols=_COLS)


@dataclass(slots=True)
class SuspiciousRow:
    transaction_id: str
    tx_datetime: datetime
    customer_id: str
    terminal_id: str
    tx_amount: float
    currency: str
    channel: str | None
    merchant_category: str | None
    country: str | None
    lat: float | None
    lon: float | None
    score: float
    decision: str
    reasons: list[str]
    features: dict[str, float]
    model_version: str | None
    rules_version: str | None
    detected_at: datetime
    source_partition: int
    source_offset: int

    def values(self) -> tuple[object, ...]:
        return (
            self.transaction_id, self.tx_datetime, self.customer_id, self.terminal_id,
            self.tx_amount, self.currency, self.channel, self.merchant_category, self.country,
            self.lat, self.lon, self.score, self.decision, Jsonb(self.reasons), Jsonb(self.features),
            self.model_version, self.rules_version, self.detected_at, self.source_partition,
            self.source_offset,
        )


class Fenced(Exception):
    """Another worker claimed these partitions since this one did: the batch was not written."""

    def __init__(self, partitions: list[int]) -> None:
        super().__init__(f"partitions {partitions} were claimed by another worker")
        self.partitions = partitions


# The fencing steps are SECURITY DEFINER functions (migration 0005): the detector's role may
# execute them but has no DELETE or UPDATE on any table.
_CLAIM = "SELECT fraudstream_claim_partition(%s, %s, %s, %s)"
_LOST = "SELECT fraudstream_lost_partitions(%s, %s, %s)"
_DISCARD = "SELECT fraudstream_discard_uncommitted(%s, %s, %s, %s)"


#: How long a detector session may sit idle inside a transaction before the server ends it.
IDLE_IN_TRANSACTION_TIMEOUT_S = 10.0


class SuspiciousSink:
    """Writes batches of rows; reconnects and retries with backoff until it succeeds or stops."""

    def __init__(
        self,
        dsn: str,
        should_stop: Callable[[], bool] = lambda: False,
        max_backoff_s: float = 5.0,
        idle_in_transaction_timeout_s: float = IDLE_IN_TRANSACTION_TIMEOUT_S,
    ) -> None:
        self.dsn = dsn
        self.should_stop = should_stop
        self.max_backoff_s = max_backoff_s
        self.idle_in_transaction_timeout_s = idle_in_transaction_timeout_s
        self._conn: psycopg.Connection | None = None
        self.retries = 0

    def _connect(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, connect_timeout=5, application_name="fraudstream-detect")
            # A worker frozen inside a write (SIGSTOP, VM pause) keeps its partitions' fencing
            # rows share-locked, and the next owner's claim waits for them: the server ends
            # such a session instead. A write's statements follow each other at once.
            self._conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (f"{round(self.idle_in_transaction_timeout_s * 1000)}ms",),
            )
            # Staged as the migration's row type, not LIKE the table: the detector's role may
            # insert into fraudulent_transactions but not read it (0004_detector_role.sql).
            self._conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS incoming_suspicious "
                "(LIKE fraudulent_transactions_incoming) ON COMMIT DELETE ROWS"
            )
            self._conn.commit()
        return self._conn

    def _write_once(self, rows: Sequence[SuspiciousRow], topic: str, epochs: Mapping[int, int]) -> int:
        conn = self._connect()
        with conn.transaction(), conn.cursor() as cur:
            # Staging first: it locks nothing another worker needs, and it is the slow part
            # (rows formatted in Python). The fencing check, the insert and the commit then
            # follow at once, so the locks are held for three round trips.
            with cur.copy(_COPY_INCOMING) as copy:
                for r in rows:
                    copy.write_row(r.values())
            if epochs:
                row = cur.execute(_LOST, (topic, list(epochs), list(epochs.values()))).fetchone()
                if row is not None and row[0]:
                    raise Fenced(sorted(row[0]))
            cur.execute(_MOVE_INCOMING)
            return cur.rowcount

    def _claim_once(self, topic: str, partition: int, committed: int, owner: str) -> int:
        conn = self._connect()
        with conn.transaction(), conn.cursor() as cur:
            row = cur.execute(_CLAIM, (topic, partition, committed, owner)).fetchone()
            assert row is not None
            log.info("partition.claimed", partition=partition, epoch=row[0], from_offset=committed)
            return int(row[0])

    def _discard_once(self, topic: str, partition: int, committed: int, epoch: int) -> None:
        conn = self._connect()
        with conn.transaction(), conn.cursor() as cur:
            row = cur.execute(_DISCARD, (topic, partition, committed, epoch)).fetchone()
            if row is None or not row[0]:
                raise Fenced([partition])

    def claim(self, topic: str, partition: int, committed: int, owner: str) -> int:
        """Take ``partition`` over: fence its previous owner and delete the rows of attempts
        that did not commit (offsets >= ``committed``). Returns this owner's epoch."""
        return self._retry(lambda: self._claim_once(topic, partition, committed, owner))

    def discard_uncommitted(self, topic: str, partition: int, committed: int, epoch: int) -> None:
        """After an aborted batch: drop its rows (they may not be decided the same way again)."""
        self._retry(lambda: self._discard_once(topic, partition, committed, epoch))

    def write(
        self, rows: Sequence[SuspiciousRow], topic: str = "", epochs: Mapping[int, int] | None = None
    ) -> int:
        """Insert ``rows`` (idempotently); returns the number of new rows. Never skips a batch.

        ``epochs``: partition -> epoch from :meth:`claim` for the rows' partitions; raises
        :class:`Fenced` (nothing written) if another worker claimed one since.
        """
        if not rows:
            return 0
        return self._retry(lambda: self._write_once(rows, topic, epochs or {}))

    def _retry(self, call: Callable[[], T]) -> T:
        backoff = 0.1
        while True:
            try:
                return call()
            except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout) as exc:
                self.retries += 1
                log.warning("postgres.write.retry", error=str(exc).strip()[:200], backoff_s=backoff)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if self.should_stop():
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
