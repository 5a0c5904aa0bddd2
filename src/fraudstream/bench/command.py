"""``fraudstream bench``: throughput, latency, naive baseline and resources on the local cluster."""

from __future__ import annotations

import json
import shlex
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Smoke run: small data, one short rate, seconds.")
    ] = False,
    workers: Annotated[
        list[int] | None,
        typer.Option(
            "--workers", help="Detector processes per throughput run (repeatable; default 1 and 2)."
        ),
    ] = None,
    preload: Annotated[
        int | None, typer.Option(help="Transactions preloaded for the throughput runs.")
    ] = None,
    rates: Annotated[
        str | None,
        typer.Option(
            help="Offered rates for the latency runs, comma-separated tx/s (default 1000,5000,20000)."
        ),
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds per latency rate.")] = None,
    live_rate: Annotated[
        float | None, typer.Option(help="Offered tx/s of the live-producer variant.")
    ] = None,
    live_seconds: Annotated[
        float | None, typer.Option(help="Seconds of the live-producer variant (0: skip).")
    ] = None,
    naive_seconds: Annotated[float | None, typer.Option(help="Seconds of the naive baseline.")] = None,
    customers: Annotated[
        int | None, typer.Option(help="Simulated customers (state size; default 5,000).")
    ] = None,
    terminals: Annotated[int | None, typer.Option(help="Simulated terminals (default 10,000).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for results.json, bench.png and logs.")] = Path(
        "bench-results"
    ),
    floor: Annotated[
        bool | None,
        typer.Option(help="Also run Kafka alone (an exactly-once pass-through) in the detector's place: "
                     "the ceiling and latency floor of the cluster on this machine."),
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the bench's topics and databases for inspection.")] = False,
) -> None:
    """Measure the detector on the local cluster; JSON + PNG into --out, a table here.

    Creates topics and databases of its own (deleted at the end), so it can run next to the
    demo. Every phase is bounded in count and time.
    """
    from fraudstream.bench import report
    from fraudstream.bench.runner import BenchConfig
    from fraudstream.settings import load_settings

    cfg = BenchConfig.quick() if quick else BenchConfig()
    if workers:
        cfg.workers = list(workers)
    if preload is not None:
        cfg.preload = preload
    if rates is not None:
        cfg.rates = [float(r) for r in rates.split(",") if r.strip()]
    for name, value in (
        ("duration_s", duration),
        ("live_rate", live_rate),
        ("live_seconds", live_seconds),
        ("naive_seconds", naive_seconds),
        ("customers", customers),
        ("terminals", terminals),
        ("floor", floor),
    ):
        if value is not None:
            setattr(cfg, name, value)
    cfg.keep = keep
    # Clean up (children stopped, topics and databases dropped) on SIGTERM / Ctrl-C too, even
    # when started in the background with SIGINT ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    results = run_bench(load_settings(), cfg, out, command=_command())
    report.print_tables(results, console)
    console.print(f"results: {out / 'results.json'}, plot: {out / 'bench.png'}")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _command() -> str:
    return "fraudstream " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def run_bench(base, cfg, out: Path, command: str = "") -> dict:  # noqa: ANN001 - Settings, BenchConfig
    """Run every experiment and write ``results.json`` and ``bench.png`` into ``out``."""
    from fraudstream.bench import report
    from fraudstream.bench.runner import run_all

    out.mkdir(parents=True, exist_ok=True)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    results = run_all(base, cfg, out, progress=lambda s: console.print(f"[dim]{s}[/]"))
    results = {"date": date, "machine": report.machine(), "command": command, **results}
    report.write_json(results, out / "results.json")
    report.plot(results, out / "bench.png")
    return results


def soak(
    rate: Annotated[float, typer.Option(help="Offered tx/s (live producer, event time = now).")] = 5000.0,
    minutes: Annotated[float, typer.Option(help="Duration of the load.")] = 10.0,
    speedup: Annotated[
        float, typer.Option(help="Event time runs this many times faster than wall time (1: now).")
    ] = 14_400.0,
    out: Annotated[Path, typer.Option(help="Folder for soak.json and logs.")] = Path("soak-results"),
    keep: Annotated[bool, typer.Option(help="Keep the soak's topics and database.")] = False,
) -> None:
    """One detector under a steady live load: are its memory and lag flat? (bounded, stops itself).

    Event time runs --speedup times faster than wall time (ending now), so that the 30-day
    windows fill and expire within the run: only then can memory be flat."""
    from fraudstream.bench.soak import SoakConfig, run_soak
    from fraudstream.settings import load_settings

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    cfg = SoakConfig(rate=rate, seconds=minutes * 60, speedup=speedup, keep=keep)
    result = run_soak(load_settings(), cfg, out, progress=lambda s: console.print(f"[dim]{s}[/]"))
    v = result.verdict
    console.print(f"sent {result.sent:,} tx in {minutes:g} min at {rate:g} tx/s offered")
    console.print(json.dumps(v, indent=2))
    ok = v.get("flat_memory") and v.get("flat_lag")
    console.print("[green]flat memory and lag[/]" if ok else "[red]memory or lag not flat[/]")
    console.print(f"results: {out / 'soak.json'}")
    if not ok:
        raise typer.Exit(1)
