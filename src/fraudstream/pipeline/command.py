"""``fraudstream detect``: run one detector worker of the consumer group."""

from __future__ import annotations

from typing import Annotated

import typer

from fraudstream.settings import load_settings


def detect(
    group: Annotated[str, typer.Option(help="Consumer group of the workers.")] = "fraudstream-detector",
    batch_size: Annotated[int, typer.Option(help="Max messages per batch (one Kafka transaction).")] = 20000,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on this port.")] = None,
    review_threshold: Annotated[float, typer.Option(help="Score from which to review.")] = 0.5,
    decline_threshold: Annotated[float, typer.Option(help="Score from which to decline.")] = 0.8,
    exit_when_idle: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without input (batch runs).")
    ] = None,
) -> None:
    """Decide every transaction of `input` exactly once: `output`, `input.dlq` and PostgreSQL."""
    from prometheus_client import start_http_server

    from fraudstream.db.migrate import migrate
    from fraudstream.pipeline.worker import Worker
    from fraudstream.rules.store import ensure_default
    from fraudstream.scoring.combine import Thresholds

    settings = load_settings()
    migrate(settings.dsn)
    import psycopg

    with psycopg.connect(settings.dsn) as conn:
        ensure_default(conn)
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    worker = Worker(
        settings, group_id=group, batch_size=batch_size,
        thresholds=Thresholds(review=review_threshold, decline=decline_threshold),
    )
    worker.install_signal_handlers()
    worker.run(max_idle_s=exit_when_idle)
