"""The app factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from vidgate import __version__
from vidgate.api import (
    asyncapi,
    errors,
    health,
    middleware,
    observability,
    openai_face,
    openapi,
    routes,
    sse,
    webhooks,
    ws,
)
from vidgate.api.runtime import open_runtime
from vidgate.api.schemas import ErrorEnvelope
from vidgate.config import Settings
from vidgate.metrics import Metrics

STATIC = resources.files("vidgate.web") / "static"


Role = Literal["api", "worker", "all"]
logger = logging.getLogger(__name__)

_TEXT = {"schema": {"type": "string"}}
# Error answers any route may give (docs/API.md, error codes), in the OpenAPI schema so
# clients and schema checks know them; routes add their own (404, 409) on top.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope, "description": "INVALID_JSON, INVALID_IDEMPOTENCY_KEY"},
    401: {
        "model": ErrorEnvelope,
        "description": "AUTH_REQUIRED, TOKEN_EXPIRED, TOKEN_INVALID, API_KEY_INVALID, ...",
        "headers": {"WWW-Authenticate": {"description": "Bearer", **_TEXT}},
    },
    403: {"model": ErrorEnvelope, "description": "ADMIN_REQUIRED"},
    413: {"model": ErrorEnvelope, "description": "PAYLOAD_TOO_LARGE"},
    422: {"model": ErrorEnvelope, "description": "VALIDATION_ERROR"},
    429: {
        "model": ErrorEnvelope,
        "description": "RATE_LIMITED, ACTIVE_TASK_LIMIT, DAILY_TASK_LIMIT",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
    },
    500: {"model": ErrorEnvelope, "description": "INTERNAL_ERROR"},
    503: {"model": ErrorEnvelope, "description": "STORE_UNAVAILABLE, NOT_READY"},
}


class VidgateAPI(FastAPI):
    """FastAPI with the security headers outside everything else, so that even the 500
    answer of Starlette's outermost error middleware carries them; and the request
    metrics outside those, so they time all of it."""

    metrics: Metrics | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.routers: list[APIRouter] = []  # the included ones, whose routes metrics name

    def include(self, router: APIRouter) -> None:
        self.include_router(router)
        self.routers.append(router)

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = middleware.SecurityHeaders(super().build_middleware_stack())
        if self.metrics is not None:
            routes = [r for router in (self.router, *self.routers) for r in router.routes]
            app = observability.RequestMetrics(app, metrics=self.metrics, routes=routes)
        return app


def _install_guards(app: FastAPI, settings: Settings, public_url: str) -> None:
    """Body limit, CORS allow-list and WebSocket origin check (the last added runs first)."""
    app.add_middleware(middleware.BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "DELETE"],  # DELETE: /api/webhooks/{id}, /v1/videos/{id}
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "Last-Event-ID",
            "Prefer",
        ],
        expose_headers=["Idempotent-Replayed", "Retry-After", "Preference-Applied"],
    )
    app.add_middleware(middleware.WebSocketOrigin, allowed=[*settings.cors_origins, public_url])


def _awaiting(task: asyncio.Task[Any]) -> list[str]:
    """The chain of coroutines ``task`` is suspended in, outermost first."""
    where: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


def _dump_tasks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` logs where every asyncio task of the process is waiting."""

    def dump() -> None:
        for task in asyncio.all_tasks():
            logger.warning("task %s waits in:\n%s", task.get_name(), "\n".join(_awaiting(task)))

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)


def create_app(settings: Settings, *, public_url: str, role: Role = "all") -> FastAPI:
    """A vidgate app for one role. The lifespan opens the store, bus and providers (and
    in demo mode the simulator). ``api`` serves the REST routes, the WebSocket and the
    page; ``worker`` runs the engine; ``all`` does both. Every role serves /healthz and
    /readyz, and /metrics unless ``settings.metrics`` is off."""
    metrics = Metrics() if settings.metrics else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(
            settings,
            public_url=public_url,
            api=role in ("api", "all"),
            engine=role in ("worker", "all"),
            metrics=metrics,
        )
        app.state.runtime = runtime
        _dump_tasks_on_sigusr1()
        try:
            yield
        finally:
            await runtime.close()
            if metrics is not None:
                metrics.close()

    app = VidgateAPI(
        title="vidgate",
        version=__version__,
        summary="Self-hosted gateway for AI video generation (dual-ID tasks).",
        lifespan=lifespan,
        responses=COMMON_ERRORS,
    )
    errors.install(app)
    openapi.install(app, auth_mode=settings.auth_mode)
    _install_guards(app, settings, public_url)
    app.include(health.router)
    if metrics is not None:
        app.metrics = app.state.metrics = metrics
        app.include(observability.router)
    if role == "worker":
        return app
    app.include(routes.router)
    app.include(ws.router)
    app.include(asyncapi.router)
    app.include(sse.router)
    app.include(webhooks.router)
    app.include(openai_face.router)
    static_dir = str(STATIC)
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(f"{static_dir}/index.html", headers={"cache-control": "no-cache"})

    return app
