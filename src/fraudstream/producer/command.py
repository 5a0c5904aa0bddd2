"""``fraudstream produce``: send simulated or recorded transactions to ``input``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fraudstream.producer.encode import parse_duration
from fraudstream.producer.kafka import LIVE_OVERRIDES, BatchProducer
from fraudstream.producer.replay import RunSummary, live, replay
from fraudstream.settings import load_settings

console = Console(stderr=True)


def load_frame(path: Path | None, customers: int, terminals: int, days: int, start: str) -> pd.DataFrame:
    """A contract frame in event-time order: from a file of `generate`, or simulated now."""
    if path is not None:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], utc=True)
    else:
        from fraudstream.generator.command import to_contract_frame
        from fraudstream.generator.handbook import generate_dataset

        _, _, tx = generate_dataset(customers, terminals, days, start)
        frame = to_contract_frame(tx)
    return frame.sort_values("tx_datetime", kind="stable").reset_index(drop=True)


def produce(
    input_file: Annotated[Path | None, typer.Option("--input", help="File from `generate`.")] = None,
    customers: Annotated[int, typer.Option(help="Simulated customers (no --input).")] = 5000,
    terminals: Annotated[int, typer.Option(help="Simulated terminals (no --input).")] = 10000,
    days: Annotated[int, typer.Option(help="Simulated days (no --input).")] = 183,
    start: Annotated[str, typer.Option(help="First simulated day.")] = "2018-04-01",
    live_mode: Annotated[bool, typer.Option("--live", help="Event time = now, paced.")] = False,
    rate: Annotated[float, typer.Option(help="tx/s (0 = as fast as possible; replay only).")] = 0.0,
    count: Annotated[int | None, typer.Option(help="Stop after this many transactions.")] = None,
    label_delay: Annotated[str, typer.Option(help="Event-time delay of labels, e.g. 7d, 60s.")] = "7d",
    labels: Annotated[bool, typer.Option(help="Publish ground truth to `training`.")] = True,
) -> None:
    """Send transactions to `input` (key customer_id) and delayed labels to `training`."""
    settings = load_settings()
    frame = load_frame(input_file, customers, terminals, days, start)
    if count is not None and not live_mode:
        frame = frame.iloc[:count]
    if live_mode and rate <= 0:
        rate = 1000.0
    delay = parse_duration(label_delay) if labels else None
    producer = BatchProducer(settings, **(LIVE_OVERRIDES if live_mode else {}))
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    total = count if live_mode else len(frame)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[rate]:,.0f} tx/s"))
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("live" if live_mode else "replay", total=total, rate=0.0)

        def advance(n: int) -> None:
            bar.advance(task, n)
            elapsed = bar.tasks[task].elapsed or 1e-9
            bar.update(task, rate=bar.tasks[task].completed / elapsed)

        kwargs = dict(topic_input=settings.topic_input, topic_training=settings.topic_training,
                      label_delay=delay, progress=advance)
        try:
            if live_mode:
                summary = live(producer, frame, rate=rate, count=count,
                               should_stop=lambda: stop["flag"], **kwargs)  # type: ignore[arg-type]
            else:
                summary = replay(producer, frame, rate=rate, **kwargs)  # type: ignore[arg-type]
        except KeyboardInterrupt:
            producer.flush(30)
            raise
    print_summary(summary)
    if summary.stats.errors:
        raise typer.Exit(1)


def print_summary(s: RunSummary) -> None:
    t = Table("sent", "labels", "seconds", "tx/s", "delivered", "errors", title="produce summary")
    t.add_row(f"{s.transactions:,}", f"{s.labels:,}", f"{s.seconds:.2f}", f"{s.rate:,.0f}",
              f"{s.stats.delivered:,}", str(s.stats.errors))
    console.print(t)
    for e in s.stats.error_samples:
        console.print(f"[red]delivery error:[/] {e}")
