"""Google's error envelope, ``{"error": {"code", "message", "status", "details"?}}``, and
the handlers that make every failure of the Veo simulator look like one.

Faults drawn by ``deps.api_guard`` arrive as plain ``SimError`` values in OpenAI's terms;
:func:`from_sim_error` restates them the way each Google surface does: a Gemini 429 tells
the wait in a ``google.rpc.RetryInfo`` detail (there is no ``Retry-After`` header), a
Vertex 429 tells nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidgate.simulator import errors, faults

# google.rpc.Code names for the HTTP statuses Google maps them to.
STATUS_WORDS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
HELP = "type.googleapis.com/google.rpc.Help"

GEMINI_SERVICE = "generativelanguage.googleapis.com"
VERTEX_SERVICE = "aiplatform.googleapis.com"


class GoogleError(errors.SimError):
    """An HTTP error answered in Google's envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        word: str | None = None,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers=headers)
        self.word = word or STATUS_WORDS.get(status, "UNKNOWN")
        self.details = [dict(d) for d in details]

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message, "status": self.word}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> Response:
        return JSONResponse(self.envelope(), status_code=self.status, headers=self.headers)


def error_info(reason: str, service: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": ERROR_INFO,
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": service, **metadata},
    }


def retry_info(seconds: float) -> dict[str, Any]:
    # A google.protobuf.Duration in its JSON form: "39s", "1.5s".
    return {"@type": RETRY_INFO, "retryDelay": f"{seconds:g}s"}


def is_vertex(request: Request) -> bool:
    """Vertex routes live at the origin root (``/v1/projects/...``), Gemini's under the
    prefix; the token endpoint and ``/_sim`` answer in Gemini's words."""
    parts = request.url.path.split("/")
    return len(parts) > 2 and parts[2] == "projects"


def _wait_of(headers: Mapping[str, str]) -> float | None:
    return faults.retry_after_of(headers)


def from_sim_error(exc: errors.SimError, *, vertex: bool) -> GoogleError:
    """An injected fault (or any OpenAI-shaped error) in the surface's own words."""
    wait = _wait_of(exc.headers)
    if exc.status == 429:
        if vertex:
            return GoogleError(
                429,
                "Resource exhausted. Please try again later. Please refer to "
                "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 "
                "for more details.",
            )
        details: list[dict[str, Any]] = [
            {
                "@type": HELP,
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            }
        ]
        if wait is not None:
            details.append(retry_info(wait))
        return GoogleError(
            429,
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits.",
            details=details,
        )
    if exc.status == 503:
        message = (
            "The service is currently unavailable."
            if vertex
            else "The model is overloaded. Please try again later."
        )
        # Only when the simulator is told to advise a wait (retry_after_503_seconds).
        return GoogleError(503, message, details=[retry_info(wait)] if wait is not None else ())
    if exc.status == 500:
        message = (
            "Internal error encountered."
            if vertex
            else "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting"
        )
        return GoogleError(500, message)
    return GoogleError(exc.status, exc.message, headers=exc.headers)


async def _handle_sim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.SimError)
    if isinstance(exc, GoogleError | faults.GarbageAnswer):
        return exc.response()
    return from_sim_error(exc, vertex=is_vertex(request)).response()


async def _handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return GoogleError(404, f"The requested URL {request.url.path} was not found.").response()
    if exc.status_code == 405:
        return GoogleError(
            405, f"Method {request.method} is not allowed on {request.url.path}."
        ).response()
    return GoogleError(exc.status_code, str(exc.detail)).response()


async def _handle_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    return GoogleError(400, f"Invalid request: {first.get('msg', 'bad value')}").response()


def install(app: FastAPI) -> None:
    """Replace the OpenAI-shaped handlers ``errors.install`` registered."""
    app.add_exception_handler(errors.SimError, _handle_sim_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
