"""Hot reload of the active rule set, for the detector's main loop.

The detector calls :meth:`RuleWatcher.poll` once per micro-batch. At most every ``interval_s``
(default 2 s) it asks PostgreSQL for the active version, a single-row index lookup, and only
when that version changed does it fetch and compile the body. So an ``activate`` is applied
within ``interval_s`` plus one batch, well under the 5 s target, without restarting anything,
and a loop spinning at thousands of batches per second costs the database nothing extra.

A database outage or a stored rule set that does not compile (say, it names a feature this
detector does not compute) never stops the detector: the error is logged, the previous rule
set stays in force, and the next poll tries again (a bad version is not fetched again until
the active version changes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import psycopg

from fraudstream.db.watcher import ActiveVersionWatcher, ConnectionFactory
from fraudstream.rules import store
from fraudstream.rules.engine import CompiledRuleSet, compile_ruleset
from fraudstream.rules.model import RuleSet

__all__ = ["RuleWatcher"]


class RuleWatcher(ActiveVersionWatcher[RuleSet, tuple[int, CompiledRuleSet]]):
    """Polls the registry and hands back ``(version, compiled)`` when the active rule set
    changes. ``features``: the names this detector computes (a rule set naming another one is
    rejected and the previous one stays in force)."""

    what = "rule set"

    def __init__(
        self,
        connect: str | ConnectionFactory,
        *,
        interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        features: Collection[str] | None = None,
    ) -> None:
        super().__init__(connect, interval_s=interval_s, clock=clock)
        self._features = features

    @property
    def current(self) -> tuple[int, CompiledRuleSet] | None:
        """The rule set in force, ``(version, compiled)``, or None before the first success."""
        return self.item

    @property
    def ruleset(self) -> CompiledRuleSet | None:
        return self.item[1] if self.item is not None else None

    def _active_version(self, conn: psycopg.Connection[Any]) -> int | None:
        return store.active_version(conn)

    def _load(self, conn: psycopg.Connection[Any], version: int) -> RuleSet | None:
        return store.get_ruleset(conn, version)

    def _accept(self, version: int, loaded: RuleSet) -> tuple[int, CompiledRuleSet]:
        return version, compile_ruleset(loaded, self._features)
