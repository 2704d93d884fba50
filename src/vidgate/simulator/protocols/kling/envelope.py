"""Kling's error envelope ``{code, message, request_id}`` and the handlers that answer in it.

Every Kling answer carries an HTTP status and a numeric service code (PROTOCOLS.md §1.4, the
vendor's "Error Code" table). Injected faults (``deps.api_guard``) arrive as plain
``SimError``s and are re-dressed here: 429 becomes code 1302, 500 code 5000, 503 code 5001,
with the injected ``Retry-After`` kept. ``/_sim/*`` keeps the simulator's own envelope.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidgate.simulator import errors, faults

# The "Explanation of Service Code" column of the vendor's table, in its English wording.
MESSAGES = {
    1000: "Authentication failed",
    1001: "Authorization is empty",
    1002: "Authorization is invalid",
    1003: "Authorization is not yet valid",
    1004: "Authorization has expired",
    1200: "Invalid request parameters",
    1202: "The requested method is invalid",
    1203: "The requested resource does not exist",
    1301: "Trigger the content security policy of the platform",
    1302: "The API request is too fast, exceeding the platform's rate limit",
    # The vendor's own example body for 1303 (Rate Limits page).
    1303: "parallel task over resource pack limit",
    5000: "Server internal error",
    5001: "Server temporarily unavailable, usually due to maintenance",
    5002: "Server internal timeout, usually due to a backlog",
}

# Injected HTTP statuses and the service code Kling sends with each.
_INJECTED = {429: 1302, 500: 5000, 503: 5001, 504: 5002}


def request_id() -> str:
    return str(uuid.uuid4())


class KlingError(errors.SimError):
    """An error answered as ``{"code", "message", "request_id"}`` with its HTTP status."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        text = message if message is not None else MESSAGES.get(code, "Request failed")
        super().__init__(status, text, headers=headers)
        self.service_code = code

    def envelope(self) -> dict[str, Any]:
        return {"code": self.service_code, "message": self.message, "request_id": request_id()}

    def response(self) -> Response:
        return JSONResponse(self.envelope(), status_code=self.status, headers=self.headers)


def invalid(message: str) -> KlingError:
    """A parameter Kling refuses: HTTP 400, code 1201, the reason in ``message``."""
    return KlingError(400, 1201, message)


def success(data: object) -> dict[str, Any]:
    return {"code": 0, "message": "SUCCEED", "request_id": request_id(), "data": data}


async def read_object(request: Request) -> dict[str, Any]:
    """The JSON body as an object, or Kling's 400/1200."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise KlingError(400, 1200, "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise KlingError(400, 1200, "Request body must be a JSON object")
    return body


def _own_envelope(request: Request) -> bool:
    return request.url.path.startswith("/_sim")


async def _handle_sim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.SimError)
    if isinstance(exc, KlingError | faults.GarbageAnswer) or _own_envelope(request):
        return exc.response()
    code = _INJECTED.get(exc.status, 5000 if exc.status >= 500 else 1200)
    return KlingError(exc.status, code, headers=exc.headers).response()


async def _handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _own_envelope(request):
        return errors.SimError(exc.status_code, str(exc.detail)).response()
    if exc.status_code in (404, 405):
        # Kling answers an unknown path or method with HTTP 404 and code 1202.
        return KlingError(404, 1202).response()
    return KlingError(exc.status_code, 1200, str(exc.detail)).response()


async def _handle_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return invalid("Invalid request parameters").response()


def install(app: FastAPI) -> None:
    """Replace the simulator's OpenAI-shaped handlers (this app speaks Kling only)."""
    app.add_exception_handler(errors.SimError, _handle_sim_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
