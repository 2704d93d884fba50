"""The simulator's app factory."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.simulator import control, errors, protocols, public, routes
from vidgate.simulator.config import SimConfig
from vidgate.simulator.state import SimState


class RequestIdMiddleware:
    """Stamps every HTTP response with `x-request-id`, as the real API does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(16)}".encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(config: SimConfig) -> FastAPI:
    state = SimState(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await state.media.aclose()

    # No /docs or /openapi.json: the contract is OpenAI's spec, not the one FastAPI would derive.
    app = FastAPI(
        title="vidgate upstream simulator",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sim = state
    errors.install(app)
    app.add_middleware(RequestIdMiddleware)
    if config.protocol == "openai-videos":
        # Before the API: with an empty prefix, /videos/{id}.mp4 would otherwise match
        # GET /videos/{video_id}.
        if config.url_field:
            app.include_router(public.router)
        app.include_router(routes.router, prefix=config.prefix)
    else:
        protocols.load(config.protocol).install(app, state)
    app.include_router(control.router)
    return app
