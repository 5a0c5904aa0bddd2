"""The long-lived resources one API process shares between requests.

Created by the application's lifespan (see :mod:`fraudstream.api.app`) and reached from
request handlers through :func:`services`, so handlers stay plain functions of their inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka.admin import AdminClient
from fastapi import Request
from psycopg_pool import ConnectionPool

from fraudstream.api.auth.sessions import SessionCodec
from fraudstream.api.labels import LabelPublisher
from fraudstream.api.stats.collector import StatsCollector
from fraudstream.settings import Settings


@dataclass
class Services:
    settings: Settings
    pool: ConnectionPool[Any]
    labels: LabelPublisher
    admin: AdminClient
    sessions: SessionCodec
    stats: StatsCollector | None

    @contextmanager
    def db(self, timeout_s: float = 5.0) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection (PoolTimeout becomes a 503 at the edge)."""
        with self.pool.connection(timeout=timeout_s) as conn:
            yield conn


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]
