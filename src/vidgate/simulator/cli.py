"""`vidgate simulator`: run the upstream simulator in the foreground.

Every option also reads a VIDGATE_SIM_* environment variable, shown in --help.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vidgate.simulator.config import PROTOCOL_PREFIXES, SimConfig, default_prefix

_DEFAULTS = SimConfig()


def _rate(name: str, what: str) -> Any:
    return typer.Option(
        min=0.0,
        max=1.0,
        envvar=f"VIDGATE_SIM_{name}",
        help=f"Share (0..1) of {what}.",
    )


def command(
    host: Annotated[
        str, typer.Option(envvar="VIDGATE_SIM_HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="VIDGATE_SIM_PORT", help="TCP port to listen on.")
    ] = 8001,
    protocol: Annotated[
        str,
        typer.Option(
            envvar="VIDGATE_SIM_PROTOCOL",
            help=f"Upstream protocol to speak: {', '.join(PROTOCOL_PREFIXES)}.",
        ),
    ] = _DEFAULTS.protocol,
    job_seconds: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="VIDGATE_SIM_JOB_SECONDS",
            help="Seconds from create to completed (queued for the first 10%).",
        ),
    ] = _DEFAULTS.job_seconds,
    prefix: Annotated[
        str | None,
        typer.Option(
            envvar="VIDGATE_SIM_PREFIX",
            help="API path prefix, e.g. /sora/v1 to imitate the seed's upstream. Default: "
            "the path of the vendor's base URL (/v1 for openai-videos, /v1beta for gemini-veo, "
            "/api/v3 for seedance, none for kling, runway and minimax).",
        ),
    ] = None,
    url_field: Annotated[
        bool,
        typer.Option(
            "--url-field/--no-url-field",
            envvar="VIDGATE_SIM_URL_FIELD",
            help="Add a reseller-style 'url' (/videos/{id}.mp4, public, Range-capable) "
            "to completed jobs.",
        ),
    ] = _DEFAULTS.url_field,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="VIDGATE_SIM_API_KEY",
            help="Require this credential on every API route (a Bearer key; gemini-veo: "
            "x-goog-api-key; kling: ACCESS_KEY:SECRET_KEY, checked as the signed JWT).",
        ),
    ] = _DEFAULTS.api_key,
    expires_after_seconds: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="VIDGATE_SIM_EXPIRES_AFTER_SECONDS",
            help="Seconds after completion until content downloads answer 404.",
        ),
    ] = _DEFAULTS.expires_after_seconds,
    error_500_rate: Annotated[
        float, _rate("ERROR_500_RATE", "API requests answered 500")
    ] = _DEFAULTS.error_500_rate,
    error_503_rate: Annotated[
        float, _rate("ERROR_503_RATE", "API requests answered 503")
    ] = _DEFAULTS.error_503_rate,
    error_429_rate: Annotated[
        float, _rate("ERROR_429_RATE", "API requests answered 429 with Retry-After")
    ] = _DEFAULTS.error_429_rate,
    retry_after_seconds: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="VIDGATE_SIM_RETRY_AFTER_SECONDS",
            help="Retry-After (and retry-after-ms) carried by injected 429s.",
        ),
    ] = _DEFAULTS.retry_after_seconds,
    retry_after_503_seconds: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="VIDGATE_SIM_RETRY_AFTER_503_SECONDS",
            help="Retry-After (and retry-after-ms) carried by injected 503s; 0 sends none.",
        ),
    ] = _DEFAULTS.retry_after_503_seconds,
    timeout_rate: Annotated[
        float, _rate("TIMEOUT_RATE", "API requests that hang before being answered")
    ] = _DEFAULTS.timeout_rate,
    hang_seconds: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="VIDGATE_SIM_HANG_SECONDS",
            help="How long a timeout fault hangs.",
        ),
    ] = _DEFAULTS.hang_seconds,
    garbage_rate: Annotated[
        float, _rate("GARBAGE_RATE", "API requests answered 200 with a non-JSON body")
    ] = _DEFAULTS.garbage_rate,
    hostile_rate: Annotated[
        float,
        _rate(
            "HOSTILE_RATE",
            "GET /videos/{id} answered with a corrupted job object (missing or mistyped "
            "fields, unknown status, bad progress, completed without url, huge or non-JSON "
            "body); the job itself is unaffected",
        ),
    ] = _DEFAULTS.hostile_rate,
    job_fail_rate: Annotated[
        float, _rate("JOB_FAIL_RATE", "jobs that end failed")
    ] = _DEFAULTS.job_fail_rate,
    job_stuck_rate: Annotated[
        float, _rate("JOB_STUCK_RATE", "jobs that never finish")
    ] = _DEFAULTS.job_stuck_rate,
    latency_ms: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="VIDGATE_SIM_LATENCY_MS",
            help="Milliseconds added to every API request.",
        ),
    ] = _DEFAULTS.latency_ms,
    seed: Annotated[
        int | None,
        typer.Option(envvar="VIDGATE_SIM_SEED", help="Seed for reproducible fault draws."),
    ] = _DEFAULTS.seed,
) -> None:
    """Run the built-in upstream simulator (OpenAI /v1/videos, or --protocol) in the foreground."""
    try:
        config = SimConfig(
            protocol=protocol,
            job_seconds=job_seconds,
            prefix=default_prefix(protocol) if prefix is None else prefix,
            url_field=url_field,
            api_key=api_key,
            expires_after_seconds=expires_after_seconds,
            error_500_rate=error_500_rate,
            error_503_rate=error_503_rate,
            error_429_rate=error_429_rate,
            retry_after_seconds=retry_after_seconds,
            retry_after_503_seconds=retry_after_503_seconds,
            timeout_rate=timeout_rate,
            hang_seconds=hang_seconds,
            garbage_rate=garbage_rate,
            hostile_rate=hostile_rate,
            job_fail_rate=job_fail_rate,
            job_stuck_rate=job_stuck_rate,
            latency_ms=latency_ms,
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    shown_host = f"[{host}]" if ":" in host else host
    typer.echo(f"vidgate simulator listening on http://{shown_host}:{port}{config.prefix}")
    from vidgate.simulator import server  # FastAPI and uvicorn: only when serving

    server.run(config, host, port)
