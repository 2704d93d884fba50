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

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from vidgate import __version__
from vidgate.api import errors, health, routes, ws
from vidgate.api.runtime import open_runtime
from vidgate.config import Settings

STATIC = resources.files("vidgate.web") / "static"


Role = Literal["api", "worker", "all"]
logger = logging.getLogger(__name__)


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
    /readyz."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(
            settings,
            public_url=public_url,
            api=role in ("api", "all"),
            engine=role in ("worker", "all"),
        )
        app.state.runtime = runtime
        _dump_tasks_on_sigusr1()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="vidgate",
        version=__version__,
        summary="Self-hosted gateway for AI video generation (dual-ID tasks).",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(health.router)
    if role == "worker":
        return app
    app.include_router(routes.router)
    app.include_router(ws.router)
    static_dir = str(STATIC)
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(f"{static_dir}/index.html", headers={"cache-control": "no-cache"})

    return app
