"""Runway's error envelope, and the handlers that put every API error into it.

Runway answers errors as ``{"error": "<human-readable text>"}``, a body validation failure
adds zod's ``issues`` and a ``docUrl`` (captured from the live API). The simulator's
shared machinery (injected faults, unknown routes) raises OpenAI-shaped errors; the
handlers installed here re-word them for the Runway API routes and leave ``/_sim/*`` to
the simulator's own envelope.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidgate.simulator import errors

DOC_URL = "https://docs.dev.runwayml.com/api"

# How Runway words the answers the simulator's fault injection and router produce.
_BY_STATUS = {
    404: "Not found",
    405: "Method not allowed",
    429: "You have exceeded your rate limit. Please try again later.",
    500: "An unexpected error occurred.",
    502: "Bad gateway",
    503: "Runway is temporarily shedding load. Please try again later.",
    504: "Gateway timeout",
}


class RunwayError(errors.SimError):
    """An error answered in Runway's envelope (``issues`` for a validation failure)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        issues: Sequence[Mapping[str, Any]] | None = None,
        doc_url: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers=headers)
        self.issues = list(issues) if issues is not None else None
        self.doc_url = doc_url

    @classmethod
    def validation(cls, issues: Sequence[Mapping[str, Any]]) -> RunwayError:
        return cls(400, "Validation of body failed", issues=issues, doc_url=True)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.issues is not None:
            body["issues"] = self.issues
        if self.doc_url:
            body["docUrl"] = DOC_URL
        return body

    def response(self) -> Response:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


async def _answer(handler: Any, request: Request, exc: Exception) -> Response:
    answered = handler(request, exc)
    if inspect.isawaitable(answered):
        answered = await answered
    assert isinstance(answered, Response)
    return answered


def _is_control(request: Request) -> bool:
    return request.url.path.startswith("/_sim/")


def install(app: FastAPI) -> None:
    """Re-register the simulator's handlers so API errors come out in Runway's words."""
    previous_sim = app.exception_handlers[errors.SimError]
    previous_http = app.exception_handlers[StarletteHTTPException]

    async def sim_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.SimError)
        if isinstance(exc, RunwayError) or exc.status < 400:
            return exc.response()  # our own envelope, or a garbage 200 meant to be garbage
        if _is_control(request):
            return await _answer(previous_sim, request, exc)
        message = _BY_STATUS.get(exc.status, exc.message)
        return RunwayError(exc.status, message, headers=exc.headers).response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        answered = await _answer(previous_http, request, exc)
        if _is_control(request):
            return answered
        # Keep the framework's Allow header (a 405) under Runway's wording.
        allow = answered.headers.get("allow")
        headers = {"allow": allow} if allow else None
        message = _BY_STATUS.get(exc.status_code, str(exc.detail))
        return RunwayError(exc.status_code, message, headers=headers).response()

    app.add_exception_handler(errors.SimError, sim_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
