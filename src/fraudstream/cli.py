"""The ``fraudstream`` command line: the thin edge where settings are read once."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fraudstream.api.command import api_app
from fraudstream.bench.command import bench, soak
from fraudstream.generator.command import generate
from fraudstream.learning.command import collect, evaluate, train, trainer
from fraudstream.observability import configure_logging
from fraudstream.pipeline.command import detect
from fraudstream.producer.command import produce
from fraudstream.rules.command import rules_app
from fraudstream.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, help="Real-time fraud detection on Kafka + PostgreSQL.")
infra_app = typer.Typer(no_args_is_help=True, help="The local embedded Kafka cluster and PostgreSQL.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(infra_app, name="infra")
app.add_typer(db_app, name="db")
console = Console()
app.command("generate")(generate)
app.command("produce")(produce)
app.command("detect")(detect)
app.command("collect")(collect)
app.command("train")(train)
app.command("evaluate")(evaluate)
app.command("trainer")(trainer)
app.command("bench")(bench)
app.command("soak")(soak)
app.add_typer(rules_app, name="rules")
app.add_typer(api_app, name="api")


@app.callback()
def _main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(1)


@infra_app.command("up")
def infra_up(
    nodes: Annotated[int, typer.Option(help="Kafka brokers (3, or 1 for a light mode).")] = 3,
) -> None:
    """Start the local Kafka cluster and PostgreSQL, create topics, migrate the schema."""
    import time

    from fraudstream.infra import local
    from fraudstream.infra.kafka import InfraError

    if nodes not in (1, 3):
        _fail(ValueError("--nodes must be 3 or 1"))
    settings = load_settings(kafka_nodes=nodes)
    started = time.monotonic()
    try:
        with console.status(f"starting {nodes} Kafka broker(s) and PostgreSQL…"):
            local.up(settings, nodes)
    except InfraError as exc:
        _fail(exc)
    console.print(f"[green]infrastructure up[/] in {time.monotonic() - started:.1f}s")
    _print_status(settings)


@infra_app.command("status")
def infra_status() -> None:
    """Brokers, controller quorum, topics (partitions/RF/ISR) and PostgreSQL reachability."""
    if not _print_status(load_settings()):
        raise typer.Exit(1)


@infra_app.command("down")
def infra_down(
    purge: Annotated[bool, typer.Option(help="Also delete all data (topics, database).")] = False,
) -> None:
    """Stop the local services (and with --purge, delete their data)."""
    from fraudstream.infra import local

    local.down(load_settings(), purge=purge)
    console.print("[green]infrastructure down[/]" + (" (purged)" if purge else ""))


def _print_status(settings: Settings) -> bool:
    from fraudstream.infra.kafka import KafkaCluster
    from fraudstream.infra.status import collect

    cluster = None if settings.kafka_bootstrap_servers else KafkaCluster(settings)
    st = collect(settings, cluster)
    console.print(f"Kafka bootstrap: {st.bootstrap}")
    if st.kafka_error:
        console.print(f"[red]Kafka unreachable:[/] {st.kafka_error}")
    else:
        console.print(f"Brokers ({len(st.brokers)}): {', '.join(st.brokers)}")
        if st.quorum:
            q = st.quorum
            console.print(f"Controller quorum: leader {q.get('leader')}, epoch {q.get('epoch')}, "
                          f"voters {q.get('voters')}")
        table = Table("topic", "partitions", "RF", "ISR (min)", "leaders")
        for t in st.topics:
            table.add_row(t.name, str(t.partitions), str(t.replication_factor), str(t.min_isr),
                          ",".join(map(str, t.leaders)))
        console.print(table)
    colour = "green" if st.postgres_ok else "red"
    console.print(f"PostgreSQL: [{colour}]{'reachable' if st.postgres_ok else 'unreachable'}[/] "
                  f"{st.postgres_detail}")
    return st.kafka_error is None and st.postgres_ok


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending numbered SQL migrations."""
    from fraudstream.db.migrate import migrate

    applied = migrate(load_settings().dsn)
    console.print(f"applied: {', '.join(applied)}" if applied else "schema up to date")


@db_app.command("grant-detector")
def db_grant_detector(
    user: Annotated[str | None, typer.Option(help="Login name (default: the detector URL's).")] = None,
    password: Annotated[
        str | None, typer.Option(help="Its password (default: the detector URL's).")
    ] = None,
) -> None:
    """Create or update the detector's least-privilege login (member of fraudstream_detector).

    Reads FRAUDSTREAM_DETECTOR_DATABASE_URL for the login and connects with DATABASE_URL.
    """
    from fraudstream.db.migrate import migrate
    from fraudstream.db.roles import RoleError, grant_detector, login_of

    settings = load_settings()
    url_user, url_password = login_of(settings.detector_dsn)
    migrate(settings.dsn)  # the group role comes with the schema
    try:
        outcome = grant_detector(settings.dsn, user or url_user, password or url_password)
    except RoleError as exc:
        _fail(exc)
    console.print(f"detector login {user or url_user!r} {outcome}")


@app.command("demo")
def demo(
    nodes: Annotated[int, typer.Option(help="Kafka brokers (3, or 1 for a light mode).")] = 3,
    duration: Annotated[float, typer.Option(help="Seconds of live traffic.")] = 60.0,
    rate: Annotated[float, typer.Option(help="Transactions per second.")] = 1000.0,
    metrics_port: Annotated[int, typer.Option(help="Detector's Prometheus port.")] = 9100,
    api_port: Annotated[
        int | None, typer.Option(help="Dashboard port (default FRAUDSTREAM_API_PORT).")
    ] = None,
) -> None:
    """The main job on the local embedded default: infrastructure, detector, dashboard, live traffic."""
    from fraudstream.demo import run_demo

    infra_up(nodes)
    run_demo(load_settings(kafka_nodes=nodes), console, duration, rate, metrics_port, api_port)


if __name__ == "__main__":
    app()
