"""What an operator sees of the api: ``GET /metrics`` and the request metrics behind it.

``/metrics`` answers in Prometheus's text format, without authentication, like
``/healthz``: it is served on the api's own port so that every role has it, and it shows
no user, task or key, only counts. Operators keep it off the public internet (a proxy
rule, or a network policy); README.md "Metrics" says how.

``RequestMetrics`` is pure ASGI and the outermost layer, so it times everything the
client waits for (body limit refusals and error answers included). Requests are labelled
by their route's template (``/api/video/tasks/{video_id}``), never by the raw path, so the
number of series stays fixed whatever ids clients send; a path no route matches is
``<unmatched>``. ``/metrics`` itself is not counted. For WebSockets it keeps the count of
open connections.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.metrics import CONTENT_TYPE, Metrics

METRICS_PATH = "/metrics"
UNMATCHED = "<unmatched>"

router = APIRouter()


@router.get(METRICS_PATH, include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Every metric of this process (or, in multiprocess mode, of all of them)."""
    registry: Metrics = request.app.state.metrics
    return Response(await registry.exposition(), media_type=CONTENT_TYPE)


class RequestMetrics:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        # Every route with a template (the included routers' and the app's own), to name
        # the requests answered before routing; others (an included router) are skipped.
        self.routes = [r for r in routes if isinstance(getattr(r, "path_format", None), str)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = scope.get("root_path", "")  # a mount changes it on the way in
        status = 500  # what the client gets if the app fails before answering

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = self._route(scope, root_path)
            self.metrics.request(scope["method"], route, status, time.perf_counter() - started)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def observed(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                self.metrics.websocket_opened()
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            if accepted:
                self.metrics.websocket_closed()

    def _route(self, scope: Scope, root_path: str) -> str:
        """The template of the route that answered, as the router left it in the scope;
        for a request answered before routing (413, a CORS preflight) or by a mount,
        the route it went or would have gone to."""
        route = scope.get("route")
        if route is None:
            route = self._match(
                {
                    "type": "http",
                    "path": scope["path"],
                    "root_path": root_path,
                    "method": scope["method"],
                }
            )
        template = getattr(route, "path_format", None)
        return template if isinstance(template, str) else UNMATCHED

    def _match(self, probe: Scope) -> BaseRoute | None:
        partial = None
        for route in self.routes:
            match, _ = route.matches(probe)
            if match is Match.FULL:
                return route
            if match is Match.PARTIAL and partial is None:
                partial = route
        return partial
