"""Hot reload of the active model, for the detector's main loop.

The detector calls :meth:`ModelWatcher.poll` once per micro-batch. At most every ``interval_s``
(default 1 s) it asks PostgreSQL for the active version, a single-row index lookup, and only
when that version changed does it fetch and load the artifact. So a ``promote`` takes effect
within ``interval_s`` plus one batch, without restarting anything, and a loop spinning at
thousands of batches per second costs the database nothing extra.

A database outage or a stored model that cannot be loaded (corrupt artifact, unknown kind, or a
feature this detector does not compute) never stops the detector: the error is logged, the
previous model stays in force, and the next poll tries again (a rejected version is not fetched
again until the active version changes). Mirrors :class:`fraudstream.rules.RuleWatcher`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection
from typing import Any

import psycopg
import structlog

from fraudstream.learning import registry
from fraudstream.learning.train import TrainedModel

__all__ = ["ModelWatcher"]

log = structlog.get_logger(__name__)

ConnectionFactory = Callable[[], "psycopg.Connection[Any]"]


class ModelWatcher:
    """Polls the registry and hands back the newly active model when the active version changes.

    ``connect`` is a DSN or a zero-argument factory returning a new connection; the watcher
    keeps one connection open (autocommit, so it never holds a snapshot or locks) and replaces
    it after an error. ``clock`` is injectable for tests (seconds, monotonic). ``features``,
    when given, is the set of features the detector computes: a model needing any other one
    is rejected instead of failing on every batch.
    """

    def __init__(
        self,
        connect: str | ConnectionFactory,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        features: Collection[str] | None = None,
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
        self._features = frozenset(features) if features is not None else None
        self._conn: psycopg.Connection[Any] | None = None
        self._last_check: float | None = None
        self._rejected: int | None = None
        self.version: int | None = None
        self.model: TrainedModel | None = None

    @property
    def current(self) -> TrainedModel | None:
        """The model in force, or None before the first successful load."""
        return self.model

    def poll(self, force: bool = False) -> TrainedModel | None:
        """The newly active model when the active version changed since the last poll, else None.

        Checks the database at most every ``interval_s`` unless ``force``. The first successful
        check returns the active model (there was none before). When no version is active the
        model in force (if any) is kept: the registry never deactivates without promoting.
        """
        now = self._clock()
        if not force and self._last_check is not None and now - self._last_check < self.interval_s:
            return None
        self._last_check = now
        try:
            return self._check()
        except psycopg.Error as exc:
            log.warning("model poll failed", error=str(exc), version_in_force=self.version)
            self._drop_connection()
            return None

    def _check(self) -> TrainedModel | None:
        conn = self._connection()
        try:
            version = registry.active_version(conn)
            if version is None or version == self.version or version == self._rejected:
                return None
            try:
                model = registry.get_model(conn, version)
            except ValueError as exc:
                self._reject(version, exc)
                return None
        finally:
            if not conn.autocommit:  # never sit idle in a transaction between polls
                conn.rollback()
        if model is None:  # gone between the two queries: the next poll sees the new state
            return None
        if self._features is not None:
            missing = [f for f in model.features if f not in self._features]
            if missing:
                self._reject(version, ValueError(f"model needs features not computed here: {missing}"))
                return None
        self.version, self.model, self._rejected = version, model, None
        log.info("model activated", version=version, features=len(model.features))
        return model

    def _reject(self, version: int, exc: Exception) -> None:
        self._rejected = version
        log.error(
            "active model rejected, keeping the previous one",
            version=version,
            error=str(exc),
            version_in_force=self.version,
        )

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
        """Close the watcher's connection (the model in force stays available)."""
        self._drop_connection()

    def __enter__(self) -> ModelWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
