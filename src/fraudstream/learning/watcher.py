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

import time
from collections.abc import Callable, Collection
from typing import Any

import psycopg

from fraudstream.db.watcher import ActiveVersionWatcher, ConnectionFactory
from fraudstream.learning import registry
from fraudstream.learning.train import TrainedModel

__all__ = ["ModelWatcher"]


class ModelWatcher(ActiveVersionWatcher[TrainedModel, TrainedModel]):
    """Polls the registry and hands back the newly active model when the active version
    changes. ``features``: the names this detector computes (a model needing any other one is
    rejected instead of failing on every batch). When no version is active the model in force
    (if any) is kept: the registry never deactivates without promoting."""

    what = "model"

    def __init__(
        self,
        connect: str | ConnectionFactory,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        features: Collection[str] | None = None,
    ) -> None:
        super().__init__(connect, interval_s=interval_s, clock=clock)
        self._features = frozenset(features) if features is not None else None

    @property
    def current(self) -> TrainedModel | None:
        """The model in force, or None before the first successful load."""
        return self.item

    @property
    def model(self) -> TrainedModel | None:
        return self.item

    def _active_version(self, conn: psycopg.Connection[Any]) -> int | None:
        return registry.active_version(conn)

    def _load(self, conn: psycopg.Connection[Any], version: int) -> TrainedModel | None:
        return registry.get_model(conn, version)

    def _accept(self, version: int, loaded: TrainedModel) -> TrainedModel:
        if self._features is not None:
            missing = [f for f in loaded.features if f not in self._features]
            if missing:
                raise ValueError(f"model needs features not computed here: {missing}")
        return loaded
