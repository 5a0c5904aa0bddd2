"""``fraudstream api``: serve the API and dashboard; ``fraudstream api users|keys …``: accounts.

Registered by the main CLI with ``app.add_typer(api_app, name="api")``.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fraudstream.api.auth import store
from fraudstream.api.auth.keys import generate_key
from fraudstream.api.auth.passwords import generate_password, hash_password
from fraudstream.settings import load_settings

__all__ = ["api_app"]

api_app = typer.Typer(help="The JSON API and the analysts' dashboard; users and API keys.")
users_app = typer.Typer(no_args_is_help=True, help="Dashboard users (password login).")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (for scripts and Prometheus).")
api_app.add_typer(users_app, name="users")
api_app.add_typer(keys_app, name="keys")
console = Console()
RoleOpt = Annotated[
    str, typer.Option("--role", help="analyst (read and label) or admin (also rules, models).")
]


def _fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def _connect() -> psycopg.Connection[Any]:
    return psycopg.connect(load_settings().dsn, autocommit=True, connect_timeout=10)


@api_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default FRAUDSTREAM_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default FRAUDSTREAM_API_PORT).")] = None,
    stats: Annotated[bool, typer.Option(help="Read output/training for the live statistics.")] = True,
) -> None:
    """Serve the API and the dashboard (uvicorn) until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from fraudstream.api.app import create_app
    from fraudstream.db.migrate import migrate

    settings = load_settings()
    migrate(settings.dsn)
    app = create_app(settings, collect_stats=stats)
    uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port,
                log_level=settings.log_level.lower(), access_log=False, proxy_headers=False)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, _ . @ -).")],
    role: RoleOpt = "analyst",
    password: Annotated[str | None, typer.Option(help="Default: prompt (or --generate).")] = None,
    generate: Annotated[bool, typer.Option(help="Generate a password and print it once.")] = False,
    replace: Annotated[bool, typer.Option(help="Reset an existing user's role and password.")] = False,
) -> None:
    """Create a dashboard user (the password is stored as an argon2id hash)."""
    if generate:
        password = generate_password()
    elif password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        hashed = hash_password(password)
        with _connect() as conn:
            store.add_user(conn, name, role, hashed, replace=replace)
    except (ValueError, psycopg.Error) as exc:
        _fail(str(exc))
    console.print(f"[green]user {escape(name)} ({role}) saved[/]")
    if generate:
        console.print(f"password: {password}", highlight=False)


@users_app.command("list")
def users_list() -> None:
    """Users and their roles."""
    with _connect() as conn:
        rows = store.list_users(conn)
    table = Table("name", "role", "disabled", "created")
    for u in rows:
        created = u.created_at.isoformat(timespec="seconds")
        table.add_row(escape(u.name), u.role, "yes" if u.disabled else "", created)
    console.print(table)


@users_app.command("disable")
def users_disable(name: str) -> None:
    """Disable a user (their open sessions stop working at once)."""
    with _connect() as conn:
        if not store.set_disabled(conn, name):
            _fail(f"no user {name!r}")
    console.print(f"[green]user {escape(name)} disabled[/]")


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="What the key is for (e.g. prometheus).")],
    role: RoleOpt = "analyst",
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    key = generate_key()
    try:
        with _connect() as conn:
            store.add_key(conn, key, name, role)
    except (ValueError, psycopg.Error) as exc:
        _fail(str(exc))
    console.print(f"[green]key {key.key_id} ({escape(name)}, {role}) created[/]; send it as "
                  "'Authorization: Bearer <key>':")
    console.print(key.token, highlight=False)


@keys_app.command("list")
def keys_list() -> None:
    """API keys (ids only; secrets are never shown again)."""
    with _connect() as conn:
        rows = store.list_keys(conn)
    table = Table("key id", "name", "role", "revoked", "created", "last used")
    for k in rows:
        table.add_row(k.key_id, escape(k.name), k.role, "yes" if k.revoked else "",
                      k.created_at.isoformat(timespec="seconds"),
                      k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key."""
    with _connect() as conn:
        if not store.revoke_key(conn, key_id):
            _fail(f"no key {key_id!r}")
    console.print(f"[green]key {key_id} revoked[/]")
