"""``fraudstream rules ...``: manage the rule-set registry from the command line.

Registered by the main CLI with ``app.add_typer(rules_app, name="rules")``. Each command reads
the settings once (``DATABASE_URL``) and opens its own autocommit connection; detectors pick
up a newly activated version by themselves (see :class:`fraudstream.rules.watcher.RuleWatcher`).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fraudstream.rules import store
from fraudstream.rules.engine import compile_ruleset, read_ruleset
from fraudstream.rules.model import RuleSetError
from fraudstream.settings import load_settings

__all__ = ["rules_app"]

rules_app = typer.Typer(no_args_is_help=True, help="Fraud rule sets: validate, load, list, activate.")
console = Console()

FileArg = Annotated[Path, typer.Argument(help="Rule set file (.yaml, .yml or .json).", show_default=False)]


def _fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def _connect() -> psycopg.Connection[Any]:
    return psycopg.connect(load_settings().dsn, autocommit=True, connect_timeout=10)


def _who() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers: the column is optional
        return None


@rules_app.command("validate")
def validate(file: FileArg) -> None:
    """Check a rule-set file (syntax, fields, feature names) without touching the database."""
    try:
        ruleset = read_ruleset(file)
    except RuleSetError as exc:
        _fail(str(exc))
    compiled = compile_ruleset(ruleset)
    disabled = len(ruleset.rules) - len(compiled.rules)
    console.print(
        f"[green]valid:[/] {escape(repr(ruleset.name))}, {len(compiled.rules)} active rule(s)"
        + (f", {disabled} disabled" if disabled else "")
        + f", features: {', '.join(sorted(compiled.features)) or '-'}",
        highlight=False,
    )


@rules_app.command("load")
def load(
    file: FileArg,
    activate: Annotated[bool, typer.Option(help="Make the new version the active one.")] = True,
    created_by: Annotated[
        str | None, typer.Option(help="Recorded with the version (default: the login name).")
    ] = None,
) -> None:
    """Store a rule-set file as a new version (and, unless --no-activate, activate it)."""
    try:
        ruleset = read_ruleset(file)
    except RuleSetError as exc:
        _fail(str(exc))
    try:
        with _connect() as conn:
            version = store.load_ruleset(conn, ruleset, created_by=created_by or _who(), activate=activate)
    except psycopg.Error as exc:
        _fail(f"database: {exc}")
    state = "active" if activate else "stored, not active"
    console.print(
        f"[green]rule set {escape(repr(ruleset.name))} loaded as version {version}[/] ({state})",
        highlight=False,
    )


@rules_app.command("list")
def list_() -> None:
    """All stored versions, newest first; the active one is marked."""
    try:
        with _connect() as conn:
            infos = store.list_rulesets(conn)
    except psycopg.Error as exc:
        _fail(f"database: {exc}")
    if not infos:
        console.print("no rule sets stored (the detector loads the default one at start)")
        return
    table = Table("version", "active", "name", "rules", "created at", "created by", "checksum")
    for info in infos:
        table.add_row(
            str(info.version),
            "[green]*[/]" if info.active else "",
            escape(info.name),
            str(info.n_rules),
            info.created_at.isoformat(timespec="seconds"),
            escape(info.created_by or ""),
            info.checksum[:12],
        )
    console.print(table)


@rules_app.command("activate")
def activate(version: Annotated[int, typer.Argument(help="Version to make active.")]) -> None:
    """Make a stored version the active one (also the way to roll back)."""
    try:
        with _connect() as conn:
            store.activate(conn, version)
    except RuleSetError as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(f"database: {exc}")
    console.print(f"[green]rule set version {version} is active[/]")
