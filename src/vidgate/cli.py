"""The ``vidgate`` command: serve, simulator, migrate, API keys, and a client
(submit / status / list)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import typer

from vidgate import client
from vidgate.auth import cli as keys_cli
from vidgate.simulator import cli as simulator_cli
from vidgate.webhooks import cli as webhooks_cli

app = typer.Typer(
    help="vidgate: a self-hosted gateway for AI video generation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _public_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


Role = Literal["api", "worker", "all"]
ROLES: dict[str, Role] = {"api": "api", "worker": "worker", "all": "all"}

HostOption = Annotated[
    str, typer.Option(envvar="VIDGATE_HOST", help="Address to bind [env: VIDGATE_HOST].")
]
LogFormatOption = Annotated[
    str,
    typer.Option(envvar="VIDGATE_LOG_FORMAT", help="console or json [env: VIDGATE_LOG_FORMAT]."),
]
LogLevelOption = Annotated[
    str, typer.Option(envvar="VIDGATE_LOG_LEVEL", help="Log level [env: VIDGATE_LOG_LEVEL].")
]


@app.command()
def serve(
    host: HostOption = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="VIDGATE_PORT", help="Port to bind [env: VIDGATE_PORT].")
    ] = 8000,
    role: Annotated[
        str,
        typer.Option(
            envvar="VIDGATE_ROLE",
            help="api (REST, WebSocket, page), worker (the engine) or all [env: VIDGATE_ROLE].",
        ),
    ] = "all",
    log_format: LogFormatOption = "console",
    log_level: LogLevelOption = "INFO",
) -> None:
    """Run vidgate: by default the api and the engine in one process (the embedded default).

    Database from VIDGATE_DATABASE_URL (default: SQLite under ./data/), providers from the
    TOML file named by VIDGATE_CONFIG; with no provider, the built-in simulator runs
    in-process (demo mode). VIDGATE_PUBLIC_URL sets how browsers reach this server.
    """
    if role not in ROLES:
        raise typer.BadParameter("must be api, worker or all", param_hint="--role")
    _run(role=ROLES[role], host=host, port=port, log_format=log_format, log_level=log_level)


@app.command()
def worker(
    host: HostOption = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            envvar="VIDGATE_WORKER_PORT",
            help="Port of the worker's /healthz and /readyz [env: VIDGATE_WORKER_PORT].",
        ),
    ] = 8001,
    log_format: LogFormatOption = "console",
    log_level: LogLevelOption = "INFO",
) -> None:
    """Run the engine only (same as `serve --role worker`), with /healthz and /readyz.

    Set VIDGATE_PUBLIC_URL to the address browsers use for the api processes: videoUrl
    points there when vidgate streams a video itself.
    """
    _run(role="worker", host=host, port=port, log_format=log_format, log_level=log_level)


def _run(*, role: Role, host: str, port: int, log_format: str, log_level: str) -> None:
    import uvicorn

    from vidgate import logs
    from vidgate.api.app import create_app
    from vidgate.auth.factory import check_config
    from vidgate.config import ConfigError, load_settings

    if log_format not in ("console", "json"):
        raise typer.BadParameter("must be console or json", param_hint="--log-format")
    logs.configure(fmt=log_format, level=log_level)
    try:
        settings = load_settings(log_format=log_format, log_level=log_level)
        check_config(settings, host=host)  # auth: usable keys; mode none only on loopback
    except (ConfigError, ValueError) as exc:
        typer.echo(f"vidgate: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    if role != "all" and settings.demo_mode:
        typer.echo(
            f"vidgate: configuration error: role {role} needs providers (VIDGATE_CONFIG); "
            "the built-in simulator of demo mode lives inside a single `serve` process",
            err=True,
        )
        raise typer.Exit(2)
    public_url = settings.public_url or _public_url(host, port)
    if role == "worker" and settings.public_url is None:
        typer.echo(
            "vidgate: note: VIDGATE_PUBLIC_URL is not set; videos streamed through vidgate "
            f"will point at {public_url}",
            err=True,
        )
    application = create_app(settings, public_url=public_url, role=role)
    if role == "worker":
        typer.echo(f"vidgate worker (health: http://{host}:{port}/readyz)")
    else:
        typer.echo(f"vidgate {public_url}  (test page: {public_url}/  API docs: {public_url}/docs)")
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_config=None,
        ws_max_size=settings.ws_max_message_bytes,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to the revision.")] = False,
) -> None:
    """Bring the database named by VIDGATE_DATABASE_URL to a schema revision."""
    from vidgate.config import load_settings
    from vidgate.store import migrate as migrations
    from vidgate.store.sql import make_engine

    async def run() -> None:
        engine = make_engine(load_settings().database_url)
        try:
            if down:
                await migrations.downgrade(engine, revision if revision != "head" else "base")
            else:
                await migrations.upgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo("database migrated")


app.command("simulator")(simulator_cli.command)
app.add_typer(keys_cli.app, name="keys")
app.add_typer(webhooks_cli.app, name="webhooks")
app.command("submit")(client.submit)
app.command("status")(client.status)
app.command("list")(client.list_tasks)


def main() -> None:
    app(prog_name="vidgate")


if __name__ == "__main__":
    main()
