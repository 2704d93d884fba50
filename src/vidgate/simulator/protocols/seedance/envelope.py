"""Ark's error envelope, and the handlers that put every simulator error into it.

Ark answers ``{"error": {"code", "message", "param", "type"}}``: ``code`` is the
machine-readable reason (``InvalidParameter``, ``AuthenticationError``,
``RateLimitExceeded.EndpointRPMExceeded`` ...), ``type`` the HTTP status's name
(``BadRequest``, ``Unauthorized`` ...), and the message ends with the request id. The
shared fault injection raises OpenAI-shaped ``SimError``s; the handler here re-dresses
them by status, keeping their headers (``Retry-After``), so a client sees Ark's codes.
"""

from __future__ import annotations

import secrets
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidgate.simulator import errors, faults

TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}

RATE_LIMITED_MESSAGE = (
    "The Requests Per Minute (RPM) limit of the associated endpoint for your account has "
    "been exceeded."
)
INTERNAL_MESSAGE = "The service encountered an unexpected internal error."
OVERLOADED_MESSAGE = (
    "The service is currently unable to handle additional requests due to server overload."
)
AUTH_MESSAGE = "The API key or AK/SK in the request is missing or invalid."


def request_id() -> str:
    """Ark's request ids: a ``021`` prefix, the time in milliseconds, then random hex."""
    return f"021{int(time.time() * 1000)}{secrets.token_hex(12)}"


class ArkError(errors.SimError):
    """An error in Ark's words; ``message`` is given without the request id suffix."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, code=code, param=param, headers=headers)
        self.ark_code = code

    def response(self) -> Response:
        body = {
            "error": {
                "code": self.ark_code,
                "message": f"{self.message} Request id: {request_id()}",
                "param": self.param or "",
                "type": TYPES.get(self.status, "BadRequest"),
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid(param: str, detail: str | None = None) -> ArkError:
    message = f"The parameter `{param}` specified in the request is not valid"
    return ArkError(
        400, "InvalidParameter", f"{message}: {detail}." if detail else f"{message}.", param=param
    )


def missing(param: str) -> ArkError:
    return ArkError(
        400,
        "MissingParameter",
        f"The request failed because it is missing a required parameter: {param}.",
        param=param,
    )


def unknown_model(model: str) -> ArkError:
    return ArkError(
        404,
        "InvalidEndpointOrModel.NotFound",
        f"The model or endpoint {model} does not exist or you do not have access to it.",
        param="model",
    )


def task_not_found(task_id: str) -> ArkError:
    return ArkError(
        404,
        "ResourceNotFound",
        f"The specified task {task_id} is not found.",
        param="id",
    )


def unauthorized() -> ArkError:
    return ArkError(401, "AuthenticationError", AUTH_MESSAGE)


def redress(exc: errors.SimError) -> ArkError:
    """An OpenAI-shaped simulator error (an injected fault, a control route's refusal) in
    Ark's words, with the same status and headers."""
    headers = dict(exc.headers)
    if exc.status == 429:
        return ArkError(
            429, "RateLimitExceeded.EndpointRPMExceeded", RATE_LIMITED_MESSAGE, headers=headers
        )
    if exc.status == 503:
        return ArkError(503, "ServerOverloaded", OVERLOADED_MESSAGE, headers=headers)
    if exc.status >= 500:
        return ArkError(exc.status, "InternalServiceError", INTERNAL_MESSAGE, headers=headers)
    if exc.status == 404:
        return ArkError(404, "NotFound", exc.message, headers=headers)
    if exc.status == 405:
        return ArkError(405, "MethodNotAllowed", exc.message, headers=headers)
    return ArkError(
        exc.status, "InvalidParameter", exc.message, param=exc.param or "", headers=headers
    )


async def _handle_sim_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.SimError)
    if isinstance(exc, ArkError | faults.GarbageAnswer):
        return exc.response()
    return redress(exc).response()


async def _handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error = ArkError(404, "NotFound", f"The requested path {request.url.path} was not found.")
    elif exc.status_code == 405:
        error = ArkError(
            405,
            "MethodNotAllowed",
            f"The method {request.method} is not allowed on {request.url.path}.",
        )
    else:
        error = ArkError(exc.status_code, "InvalidParameter", str(exc.detail))
    return error.response()


async def _handle_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = first.get("loc", ())
    return invalid(str(location[-1]) if location else "request").response()


def install(app: FastAPI) -> None:
    """Replace the OpenAI-shaped handlers ``errors.install`` registered (one per class)."""
    app.add_exception_handler(errors.SimError, _handle_sim_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
