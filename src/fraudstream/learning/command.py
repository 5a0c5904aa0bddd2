"""``fraudstream collect``, ``train`` and ``evaluate``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any

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
    """Train a LightGBM model on the labelled feature store; register it; promote it if it beats
    the active model re-scored on the same validation days."""
    from datetime import timedelta

    import psycopg

    from fraudstream.learning.trainer import train_and_register

    def day(text: str) -> datetime:
        return datetime.combine(date.fromisoformat(text), time(), UTC)

    one = timedelta(days=1)
    validate = (day(validate_from), day(validate_to) + one) if validate_from and validate_to else None
    with psycopg.connect(load_settings().dsn) as conn:
        outcome = train_and_register(
            conn, day(date_from), day(date_to) + one, validate, force_promote=promote
        )
    if outcome is None:
        console.print(f"[red]not enough labelled data in {date_from}..{date_to}[/]")
        raise typer.Exit(1)
    console.print(_outcome_table(outcome))


def _outcome_table(outcome: Any) -> Table:
    t = Table("version", "rows", "AUC ROC", "AP", "CP@100", "active on same days (CP@100)", "promoted")
    m = outcome.metrics
    active = (outcome.active_metrics or {}).get("card_precision@100")
    t.add_row(str(outcome.version), str(m.get("train_rows")),
              *(_fmt(m.get(k)) for k in ("auc_roc", "average_precision", "card_precision@100")),
              _fmt(active), str(outcome.promoted))
    return t


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{float(x):.3f}"


def trainer(
    every_days: Annotated[
        float, typer.Option(help="Retrain every N event-time days of labels (0: off).")
    ] = 7.0,
    every_labels: Annotated[int, typer.Option(help="... or every N new labels (0: off).")] = 0,
    train_days: Annotated[int, typer.Option(help="Training window (days).")] = 7,
    validate_days: Annotated[int, typer.Option(help="Validation window right after it (days).")] = 7,
    interval: Annotated[float, typer.Option(help="Seconds of collecting between schedule checks.")] = 30.0,
    once: Annotated[bool, typer.Option(help="Collect until idle, check the schedule once, exit.")] = False,
) -> None:
    """Keep the labelled feature store filled and retrain on schedule (promoting better models).

    Runs the collector (decisions + labels -> feature store) and, every ``--interval`` seconds,
    trains when the schedule says so. Stops on SIGTERM.
    """
    import signal
    import time as clock

    import psycopg

    from fraudstream.learning.collector import Collector
    from fraudstream.learning.trainer import Schedule, run_once

    settings = load_settings()
    schedule = Schedule(every_days, every_labels, train_days, validate_days)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
    collector = Collector(settings, keep_open=True)
    try:
        def slice_over(until: float) -> Callable[[], bool]:
            return lambda: stop["flag"] or (not once and clock.monotonic() > until)

        while not stop["flag"]:
            idle = 5.0 if once else None
            collector.run(should_stop=slice_over(clock.monotonic() + interval), max_idle_s=idle)
            with psycopg.connect(settings.dsn) as conn:
                outcome = run_once(conn, schedule)
            if outcome is not None:
                console.print(_outcome_table(outcome))
            if once:
                if outcome is None:
                    console.print("no model trained: not due, or not enough labelled data")
                break
    finally:
        collector.close()


def evaluate(
    out: Annotated[Path, typer.Option(help="Where to write evaluation.json.")] = Path("evaluation"),
    history_days: Annotated[
        int, typer.Option(help="Days streamed before the training week (0: the whole simulation).")
    ] = 40,
    extra_scenarios: Annotated[
        bool, typer.Option(help="Add the simulator's card-testing and account-takeover frauds.")
    ] = False,
    keep: Annotated[bool, typer.Option(help="Keep the evaluation's topics and database.")] = False,
) -> None:
    """The handbook's protocol through the real pipeline; prints the system beside the handbook.

    Starts the local Kafka cluster and PostgreSQL when no external ones are configured, and
    works on topics and a database of its own (deleted at the end).
    """
    import time as clock

    from fraudstream.infra import local
    from fraudstream.learning import evaluate as ev
    from fraudstream.observability import configure_logging

    settings = load_settings()
    # The in-process worker and collector log every few seconds; the steps below say enough.
    configure_logging("WARNING", settings.log_json)
    began = clock.monotonic()
    if not settings.kafka_bootstrap_servers:
        with console.status("starting the local Kafka cluster and PostgreSQL…"):
            local.up(settings, settings.kafka_nodes)
    result = ev.run(
        settings, work_dir=out, history_days=history_days or None, extra_scenarios=extra_scenarios,
        keep=keep, step=lambda msg: console.print(f"[dim]{msg}…[/]"),
    )
    result.seconds["total"] = round(clock.monotonic() - began, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(result.to_json())
    console.print(evaluation_table(result))
    console.print(scenario_table(result))
    console.print(
        f"rows: {result.rows}; seconds: {result.seconds}; written to {out / 'evaluation.json'}"
    )


def evaluation_table(result: Any) -> Table:
    from fraudstream.learning.evaluate import GOAL, HANDBOOK_RESULTS

    t = Table("model", "AUC ROC", "Average precision", "Card Precision@100",
              title="Handbook protocol: train 2018-07-25..31, test 2018-08-08..14")
    for name, auc, ap, cp in HANDBOOK_RESULTS:
        t.add_row(name, f"{auc:.3f}", f"{ap:.3f}", f"{cp:.3f}")
    m = result.metrics
    cells = [m.get("auc_roc"), m.get("average_precision"), m.get("card_precision@100")]
    t.add_row("[bold]fraudstream (streamed features, LightGBM)[/]",
              *(f"[bold]{v:.3f}[/]" if v is not None else "-" for v in cells))
    t.add_row("goal", *(f">= {GOAL[k]:.2f}" for k in ("auc_roc", "average_precision", "card_precision@100")))
    return t


def scenario_table(result: Any) -> Table:
    names = {1: "1 amount > 220", 2: "2 compromised terminal", 3: "3 compromised card",
             4: "4 card testing", 5: "5 account takeover"}
    threshold = result.settings.get("threshold")
    t = Table("scenario", "test frauds", f"model recall (p >= {threshold})", "live decision recall",
              title="Recall per fraud scenario (test days)")
    for row in result.per_scenario:
        t.add_row(names.get(row["scenario"], str(row["scenario"])), str(row["frauds"]),
                  f"{row['model_recall']:.3f}", f"{row['live_recall']:.3f}")
    return t
