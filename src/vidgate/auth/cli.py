"""``vidgate keys``: create, list and revoke API keys (auth mode ``apikey``).

The commands work on the database named by VIDGATE_DATABASE_URL, so run them with the
server's configuration. A new key is printed once; vidgate keeps only a hash of it.
Exit codes: 0 done, 2 the command could not do its job (message on stderr).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from vidgate.store.base import ApiKey
    from vidgate.store.sql import SqlTaskStore

T = TypeVar("T")

app = typer.Typer(
    help="Create, list and revoke API keys (VIDGATE_AUTH_MODE=apikey), in the database "
    "named by VIDGATE_DATABASE_URL.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"vidgate: {message}", err=True)
    return typer.Exit(2)


def _with_store(work: Callable[[SqlTaskStore], Awaitable[T]]) -> T:
    """Run ``work`` on the configured database; failures end the command with exit 2."""
    from vidgate.config import ConfigError, load_settings
    from vidgate.domain.errors import VidgateError
    from vidgate.store.base import StoreUnavailable
    from vidgate.store.sql import SqlTaskStore

    async def run() -> T:
        settings = load_settings()
        if settings.auth_mode != "apikey":
            typer.echo(
                f"vidgate: note: VIDGATE_AUTH_MODE is {settings.auth_mode}, so the server "
                "does not check API keys",
                err=True,
            )
        store = await SqlTaskStore.open(
            settings.database_url, migrate_schema=settings.migrate_on_start
        )
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (ConfigError, ValueError) as exc:
        raise _fail(f"configuration error: {exc}") from None
    except VidgateError as exc:
        raise _fail(exc.message) from None
    except StoreUnavailable as exc:
        raise _fail(f"database unavailable: {exc}") from None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


@app.command()
def create(
    user: Annotated[str, typer.Option("--user", help="The user id the key authenticates as.")],
    label: Annotated[str, typer.Option(help="A note to recognise the key by.")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="Give the key the admin role.")] = False,
) -> None:
    """Create a key for a user and print it, this once only."""
    from vidgate.auth.keys import issue_key

    issued = _with_store(lambda store: issue_key(store, user_id=user, label=label, admin=admin))
    row = issued.key
    typer.echo(f"key id   {row.key_id}")
    typer.echo(f"user     {row.user_id}")
    typer.echo(f"admin    {'yes' if row.admin else 'no'}")
    typer.echo(f"key      {issued.plaintext}")
    typer.echo(
        "Store the key now: it cannot be shown again (vidgate keeps only a hash of it). "
        "Clients send it as 'Authorization: Bearer <key>'."
    )


@app.command("list")
def list_keys(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's keys.")] = None,
) -> None:
    """List keys: id, user, label, admin, created, revoked (never the key itself)."""

    async def fetch(store: SqlTaskStore) -> list[ApiKey]:
        return await store.list_api_keys(user)

    rows = _with_store(fetch)
    if not rows:
        typer.echo("no keys")
        return
    table = [("KEY ID", "USER", "LABEL", "ADMIN", "CREATED", "REVOKED")]
    table += [
        (
            row.key_id,
            row.user_id,
            row.label or "-",
            "yes" if row.admin else "no",
            _when(row.created_at),
            _when(row.revoked_at),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`vidgate keys list`).")],
) -> None:
    """Revoke a key: the next request made with it is refused (401 API_KEY_REVOKED)."""

    async def run(store: SqlTaskStore) -> ApiKey | None:
        row = await store.get_api_key(key_id)
        if row is not None and row.revoked_at is None:
            await store.revoke_api_key(key_id, at=datetime.now(UTC))
        return row

    row = _with_store(run)
    if row is None:
        raise _fail(f"no API key with id {key_id!r}")
    if row.revoked_at is not None:
        typer.echo(f"key {key_id} was already revoked at {_when(row.revoked_at)}")
        return
    typer.echo(f"revoked key {key_id} (user {row.user_id})")
