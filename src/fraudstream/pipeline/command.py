"""``fraudstream detect``: run one detector worker of the consumer group."""

from __future__ import annotations

from typing import Annotated

import structlog
import typer

from fraudstream.redact import redact_dsn
from fraudstream.settings import Settings, load_settings

log = structlog.get_logger(__name__)


def detect(
    group: Annotated[str, typer.Option(help="Consumer group of the workers.")] = "fraudstream-detector",
    batch_size: Annotated[int, typer.Option(help="Max messages per batch (one Kafka transaction).",
                                            envvar="FRAUDSTREAM_BATCH_SIZE")] = 20000,
    commit_interval_ms: Annotated[
        float, typer.Option(help="At most one Kafka transaction per this many ms (0: back to back).")
    ] = 0.0,
    arrival_grace_ms: Annotated[
        float, typer.Option(help="Before deciding, wait this long after a batch arrives for other "
                            "partitions at their end to catch up (live traffic: 10-minute "
                            "terminal counts miss transactions later than this; 0: no wait).")
    ] = 100.0,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on this port.")] = None,
    review_threshold: Annotated[float, typer.Option(help="Score from which to review.")] = 0.5,
    decline_threshold: Annotated[float, typer.Option(help="Score from which to decline.")] = 0.8,
    exit_when_idle: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without input (batch runs).")
    ] = None,
    setup: Annotated[
        bool, typer.Option(help="Migrate the schema and seed the default rule set first, with "
                           "DATABASE_URL (--no-setup where only the detector's login is given).")
    ] = True,
) -> None:
    """Decide every transaction of `input` exactly once: `output`, `input.dlq` and PostgreSQL."""
    from prometheus_client import start_http_server

    from fraudstream.pipeline.worker import Worker
    from fraudstream.scoring.combine import Thresholds

    _limit_malloc_arenas()
    settings = load_settings()
    if setup:
        _setup(settings)
    _log_start(settings, group)
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    # Every connection the worker opens uses the detector's least-privilege login.
    worker = Worker(
        settings.for_detector(), group_id=group, batch_size=batch_size,
        commit_interval_s=commit_interval_ms / 1000, arrival_grace_s=arrival_grace_ms / 1000,
        thresholds=Thresholds(review=review_threshold, decline=decline_threshold),
    )
    worker.install_signal_handlers()
    worker.run(max_idle_s=exit_when_idle)


#: glibc malloc arenas (its default: 8 per core). Each of a worker's ~40 threads (the decider,
#: and the librdkafka threads of its 8 Kafka clients, whose fetch buffers are large) may get an
#: arena of its own, whose freed memory other threads cannot reuse.
MALLOC_ARENAS = 2
#: Allocations from this size on get pages of their own, given back when freed. glibc's
#: default threshold grows with the largest block freed (up to 32 MB), after which the state's
#: arrays, reallocated as they grow, leave their old copies in the heap.
MMAP_THRESHOLD = 1 << 20
_M_ARENA_MAX = -8  # mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def _limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas before any thread starts, and fix its mmap threshold
    (memory of a 1 M-customer worker). A no-op where the C library is not glibc; either is
    left alone when its environment variable (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``)
    is set."""
    import ctypes
    import ctypes.util
    import os

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            if "MALLOC_ARENA_MAX" not in os.environ:
                libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
            if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
                libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except OSError:
        pass


def _setup(settings: Settings) -> None:
    """Schema and default rule set: owner's work, done before the worker's own connections."""
    import psycopg

    from fraudstream.db.migrate import migrate
    from fraudstream.rules.store import ensure_default

    migrate(settings.dsn)
    with psycopg.connect(settings.dsn) as conn:
        ensure_default(conn)


def _log_start(settings: Settings, group: str) -> None:
    """Where the worker connects, for operators: never a password (DSNs are redacted)."""
    own_role = settings.detector_dsn != settings.dsn
    log.info(
        "detector.start", group=group, database=redact_dsn(settings.detector_dsn),
        least_privilege=own_role, kafka=settings.bootstrap_servers(),
        kafka_security_protocol=settings.kafka_security_protocol,
        kafka_sasl_mechanism=settings.kafka_sasl_mechanism,
        kafka_sasl_username=settings.kafka_sasl_username,
    )
    if not own_role:
        log.warning("detector.database.owner_role",
                    hint="set FRAUDSTREAM_DETECTOR_DATABASE_URL to a `db grant-detector` login")
