"""``fraudstream demo``: the whole system on the local embedded default, end to end.

Brings the infrastructure up, starts a detector worker, the trainer (collector + scheduled
retraining) and the API with its dashboard (child processes, as in production); on the first run
seeds a month of labelled history so that a first model is trained and hot-swapped in; then
streams simulated transactions live through them and shows what was decided. The dashboard
stays up until Ctrl-C when run from a terminal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

from fraudstream.producer.command import load_frame
from fraudstream.producer.kafka import BatchProducer
from fraudstream.producer.replay import live, replay
from fraudstream.settings import Settings


def _child(settings: Settings, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    logs = settings.state_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraudstream.cli", *args],
        stdout=log_file.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    return proc, log_file


def start_detector(settings: Settings, metrics_port: int) -> tuple[subprocess.Popen, Path]:
    return _child(settings, "detector", "detect", "--metrics-port", str(metrics_port))


def start_trainer(settings: Settings) -> tuple[subprocess.Popen, Path]:
    """Collector + scheduled retraining: a first model from the seeded history (21 days of
    training, 7 of validation), then a new one every 7 event-time days of labels."""
    return _child(settings, "trainer", "trainer", "--train-days", "21", "--validate-days", "7",
                  "--every-days", "7", "--interval", "10")


def _models(settings: Settings) -> list[tuple[int, bool]]:
    with psycopg.connect(settings.dsn) as conn:
        return [(int(v), bool(a)) for v, a in conn.execute("SELECT version, active FROM models ORDER BY 1")]


def seed_history(settings: Settings, console: Console, producer: BatchProducer, frame) -> None:  # noqa: ANN001
    """First run only: a month of history with labels 7 days later, so that the trainer has
    labelled decisions for a first model before live traffic starts."""
    if _models(settings):
        return
    console.print(f"seeding {len(frame):,} historical transactions (labels 7 days later) "
                  "for a first model…")
    replay(producer, frame, topic_input=settings.topic_input, topic_training=settings.topic_training,
           label_delay=timedelta(days=7))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(active for _, active in _models(settings)):
        time.sleep(2)
    active = [v for v, a in _models(settings) if a]
    console.print(f"model v{active[0]} trained on the history and promoted; the detector hot-swaps it"
                  if active else "[yellow]no model promoted yet (see the trainer log)[/]")


def summary(settings: Settings, console: Console) -> None:
    with psycopg.connect(settings.dsn) as conn:
        rows = conn.execute(
            "SELECT decision, count(*) FROM fraudulent_transactions GROUP BY 1 ORDER BY 1"
        ).fetchall()
        top = conn.execute(
            "SELECT transaction_id, customer_id, tx_amount, score, decision, reasons "
            "FROM fraudulent_transactions ORDER BY detected_at DESC, score DESC LIMIT 8"
        ).fetchall()
    t = Table("decision", "rows in fraudulent_transactions", title="suspicious transactions")
    for decision, n in rows:
        t.add_row(decision, f"{n:,}")
    console.print(t)
    t = Table("transaction", "customer", "amount", "score", "decision", "reasons", title="latest alerts")
    for tid, cust, amount, score, decision, reasons in top:
        t.add_row(tid, cust, f"{amount}", f"{score:.2f}", decision, ", ".join(reasons)[:60])
    console.print(t)


def start_dashboard(settings: Settings, console: Console, port: int) -> subprocess.Popen:
    """The API and dashboard as a child process, with a freshly generated admin password."""
    from fraudstream.api.launch import DEMO_ADMIN, ensure_admin, start_api

    log_file = settings.state_dir.resolve() / "logs" / "api.log"
    api = start_api(settings, port, log_file)
    password = ensure_admin(settings)
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    console.print(f"[bold green]dashboard:[/] http://{host}:{port}/  user [bold]{DEMO_ADMIN}[/], "
                  f"password [bold]{password}[/] (pid {api.pid}; log: {log_file})", highlight=False)
    return api


def _linger(console: Console, detector: subprocess.Popen) -> None:
    """From a terminal, keep the detector and dashboard up until Ctrl-C."""
    if not sys.stdin.isatty():
        return
    console.print("traffic finished; the dashboard stays up — press Ctrl-C to stop")
    try:
        while detector.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_demo(settings: Settings, console: Console, duration_s: float, rate: float, metrics_port: int,
             api_port: int | None = None) -> None:
    detector, log_file = start_detector(settings, metrics_port)
    console.print(f"detector started (pid {detector.pid}); log: {log_file}; "
                  f"metrics: http://127.0.0.1:{metrics_port}/metrics")
    api = trainer = None
    try:
        api = start_dashboard(settings, console, api_port or settings.api_port)
        trainer, trainer_log = start_trainer(settings)
        console.print(f"trainer started (pid {trainer.pid}); log: {trainer_log}")
        frame = load_frame(None, customers=2000, terminals=4000, days=30, start="2018-04-01")
        producer = BatchProducer(settings)
        seed_history(settings, console, producer, frame)
        deadline = time.monotonic() + duration_s
        console.print(f"streaming live transactions at {rate:,.0f} tx/s for {duration_s:.0f} s…")
        result = live(
            producer, frame, topic_input=settings.topic_input, topic_training=settings.topic_training,
            label_delay=timedelta(seconds=30), rate=rate,
            should_stop=lambda: time.monotonic() > deadline or detector.poll() is not None,
        )
        console.print(f"sent {result.transactions:,} transactions, {result.labels:,} labels")
        time.sleep(3)
        if detector.poll() is not None:
            console.print(f"[red]the detector exited ({detector.returncode}); see {log_file}[/]")
        summary(settings, console)
        _linger(console, detector)
    finally:
        _stop(api)
        _stop(trainer)
        _stop(detector)
