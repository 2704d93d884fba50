"""``vidgate webhooks verify``: check a received delivery the way a receiver should, with
the ``standardwebhooks`` package. Exit codes: 0 verified, 1 not verified, 2 bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

app = typer.Typer(help="Outbound webhook helpers (Standard Webhooks v1).", no_args_is_help=True)


def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")


def parse_headers(text: str) -> dict[str, str]:
    """A JSON object, or ``Name: value`` lines as an HTTP dump shows them."""
    stripped = text.strip()
    if stripped.startswith("{"):
        loaded = json.loads(stripped)
        return {str(k).lower(): str(v) for k, v in loaded.items()}
    headers = {}
    for line in stripped.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


@app.command()
def verify(
    secret: Annotated[
        str,
        typer.Option(
            envvar="VIDGATE_WEBHOOK_SECRET",
            help="The endpoint's (or task) secret, whsec_... [env: VIDGATE_WEBHOOK_SECRET].",
        ),
    ],
    headers: Annotated[
        str,
        typer.Option(help="File with the request headers: JSON, or 'Name: value' lines."),
    ],
    body: Annotated[str, typer.Option(help="File with the raw request body ('-': stdin).")],
) -> None:
    """Verify one delivery's signature and timestamp (at most 5 minutes old)."""
    try:
        raw_body = _read(body)
        parsed = parse_headers(_read(headers))
        message = Webhook(secret).verify(raw_body, parsed)
    except WebhookVerificationError as exc:
        typer.echo(f"not verified: {exc}", err=True)
        raise typer.Exit(1) from None
    except (OSError, ValueError) as exc:
        typer.echo(f"vidgate: {exc}", err=True)
        raise typer.Exit(2) from None
    data = message.get("data", {}) if isinstance(message, dict) else {}
    typer.echo(f"verified: {parsed.get('webhook-id')} {message.get('type')} {data.get('videoId')}")
