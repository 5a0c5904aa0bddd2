"""Hot reload of "the active version" of a registry table (rule sets, models).

The detector polls between micro-batches. At most every ``interval_s`` the watcher asks
PostgreSQL for the active version (a one-row index lookup) and only when it changed does it
load and accept the new item. A database outage, or an active item that cannot be loaded or
accepted here, never stops the detector: the error is logged, the previous item stays in
force, and a rejected version is not fetched again until the active version changes.
Subclasses say how to read the active version, load an item and accept it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar

import psycopg
import structlog

log = structlog.get_logger(__name__)

ConnectionFactory = Callable[[], "psycopg.Connection[Any]"]
Loaded = TypeVar("Loaded")
Accepted = TypeVar("Accepted")


class ActiveVersionWatcher(Generic[Loaded, Accepted]):
    """``connect`` is a DSN or a factory of new connections; one connection is kept open
    (autocommit, so it never holds a snapshot or locks) and replaced after an error.
    ``clock`` is injectable for tests (seconds, monotonic)."""

    what = "item"

    def __init__(
        self,
        connect: str | ConnectionFactory,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(connect, str):
            dsn = connect
            self._connect: ConnectionFactory = lambda: psycopg.connect(
                dsn, autocommit=True, connect_timeout=5
            )
        else:
            self._connect = connect
        self.interval_s = interval_s
        self._clock = clock
        self._conn: psycopg.Connection[Any] | None = None
        self._last_check: float | None = None
        self._rejected: int | None = None
        self.version: int | None = None
        self.item: Accepted | None = None

    # ---- what subclasses provide ------------------------------------------------------
    def _active_version(self, conn: psycopg.Connection[Any]) -> int | None:
        raise NotImplementedError

    def _load(self, conn: psycopg.Connection[Any], version: int) -> Loaded | None:
        """The stored item (None if it vanished); ValueError if it cannot be read."""
        raise NotImplementedError

    def _accept(self, version: int, loaded: Loaded) -> Accepted:
        """Make the item usable here; ValueError (or a subclass) to reject it."""
        raise NotImplementedError

    # ---- the mechanism ----------------------------------------------------------------
    def poll(self, force: bool = False) -> Accepted | None:
        """The newly accepted item when the active version changed since the last poll.

        Checks the database at most every ``interval_s`` unless ``force``; the first
        successful check returns the active item (there was none before).
        """
        now = self._clock()
        if not force and self._last_check is not None and now - self._last_check < self.interval_s:
            return None
        self._last_check = now
        try:
            return self._check()
        except psycopg.Error as exc:
            log.warning(f"{self.what} poll failed", error=str(exc), version_in_force=self.version)
            self._drop_connection()
            return None

    def _check(self) -> Accepted | None:
        conn = self._connection()
        try:
            version = self._active_version(conn)
            if version is None or version == self.version or version == self._rejected:
                return None
            try:
                loaded = self._load(conn, version)
            except ValueError as exc:  # e.g. a body or artifact that no longer reads
                self._reject(version, exc)
                return None
        finally:
            if not conn.autocommit:  # never sit idle in a transaction between polls
                conn.rollback()
        if loaded is None:  # gone between the two queries: the next poll sees the new state
            return None
        try:
            accepted = self._accept(version, loaded)
        except ValueError as exc:
            self._reject(version, exc)
            return None
        self.version, self.item, self._rejected = version, accepted, None
        log.info(f"{self.what} activated", version=version)
        return accepted

    def _reject(self, version: int, exc: Exception) -> None:
        self._rejected = version
        log.error(f"active {self.what} rejected, keeping the previous one", version=version,
                  error=str(exc), version_in_force=self.version)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):  # it is being thrown away anyway
                conn.close()

    def close(self) -> None:
        """Close the watcher's connection (the item in force stays available)."""
        self._drop_connection()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
