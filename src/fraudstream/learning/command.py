"""``fraudstream collect`` and ``fraudstream train``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fraudstream.settings import load_settings

console = Console()


def collect(
    exit_when_idle: Annotated[float | None, typer.Option(help="Stop after this many idle seconds.")] = None,
) -> None:
    """Join decisions (`output`) and labels (`training`) into the labelled feature store."""
    import signal

    from fraudstream.learning.collector import Collector

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    c = Collector(load_settings())
    c.run(should_stop=lambda: stop["flag"], max_idle_s=exit_when_idle)
    console.print(f"stored {c.decisions:,} decisions and {c.labels:,} labels")


def train(
    date_from: Annotated[str, typer.Option("--from", help="First training day (UTC), YYYY-MM-DD.")],
    date_to: Annotated[str, typer.Option("--to", help="Last training day (inclusive).")],
    validate_from: Annotated[str | None, typer.Option(help="First validation day.")] = None,
    validate_to: Annotated[str | None, typer.Option(help="Last validation day (inclusive).")] = None,
    promote: Annotated[bool, typer.Option(help="Promote whatever the metrics say.")] = False,
) -> None:
    """Train a LightGBM model on the labelled feature store; register it; promote it if better."""
    from datetime import timedelta

    import psycopg

    from fraudstream.features.definitions import FEATURE_NAMES
    from fraudstream.learning import registry
    from fraudstream.learning.feature_store import training_frame
    from fraudstream.learning.metrics import assessment_metrics
    from fraudstream.learning.train import train_model

    def day(text: str) -> date:
        return date.fromisoformat(text)

    settings = load_settings()
    with psycopg.connect(settings.dsn) as conn:
        t0, t1 = day(date_from), day(date_to) + timedelta(days=1)
        frame = training_frame(conn, t0, t1)
        if frame.empty or frame["is_fraud"].nunique() < 2:
            console.print(f"[red]not enough labelled data in {date_from}..{date_to}[/]")
            raise typer.Exit(1)
        model = train_model(frame, FEATURE_NAMES)
        metrics: dict[str, object] = {"train_rows": len(frame)}
        if validate_from and validate_to:
            val = training_frame(conn, day(validate_from), day(validate_to) + timedelta(days=1))
            probs, _, _ = model.predict({n: val[n].to_numpy() for n in FEATURE_NAMES})
            metrics.update(
                assessment_metrics(val["is_fraud"], probs, val["customer_id"], val["tx_datetime"])
            )
        active = registry.active_metrics(conn)
        do_promote = promote or registry.should_promote(metrics, active)
        span = (datetime.combine(t0, time(), UTC), datetime.combine(t1, time(), UTC))
        version = registry.register(conn, model, metrics, *span, promote=do_promote)
    t = Table("version", "rows", "AUC ROC", "AP", "CP@100", "promoted")
    t.add_row(str(version), str(len(frame)), *(str(metrics.get(k)) for k in (
        "auc_roc", "average_precision", "card_precision@100")), str(do_promote))
    console.print(t)
