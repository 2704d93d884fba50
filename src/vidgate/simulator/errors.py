"""Errors in OpenAI's envelope, and the one place that turns them into responses.

Every failure the simulator answers with is a `SimError` (or a subclass) raised from a route or
dependency; `install` registers a single handler that asks the error for its response. Framework
errors (unknown URL, wrong method, a query FastAPI could not parse) are mapped to the same
envelope so clients never see FastAPI's `{"detail": ...}` shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

INVALID_REQUEST = "invalid_request_error"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

# OpenAI's own wording for a body that is not JSON.
MALFORMED_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
    "help center at help.openai.com.)"
)


class SimError(Exception):
    """An HTTP error answered as `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> Response:
        return JSONResponse(self.envelope(), status_code=self.status, headers=self.headers)


def quote_list(values: Sequence[str]) -> str:
    """['4', '8', '12'] -> "'4', '8', and '12'" (OpenAI's phrasing, Oxford comma included)."""
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def invalid_value(param: str, value: object, supported: Sequence[str]) -> SimError:
    return SimError(
        400,
        f"Invalid value: '{value}'. Supported values are: {quote_list(supported)}.",
        param=param,
        code="invalid_value",
    )


def invalid_type(param: str, expected: str, value: object) -> SimError:
    return SimError(
        400,
        f"Invalid type for '{param}': expected {expected}, "
        f"but got {json_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def missing(param: str) -> SimError:
    return SimError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def not_found(video_id: str) -> SimError:
    return SimError(404, f"Video with id '{video_id}' not found.", param="video_id")


def json_type_name(value: object) -> str:
    """How OpenAI names a JSON value's type in its messages ("an integer", "an object")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a file"


async def _handle_sim_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimError)
    return exc.response()


async def _handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        # OpenAI's wording for a route it does not have.
        error = SimError(404, f"Invalid URL ({request.method} {request.url.path})")
    elif exc.status_code == 405:
        error = SimError(
            405,
            f"Method {request.method} is not allowed on {request.url.path}.",
            headers={"allow": ", ".join(_allowed_methods(request))},
        )
    else:
        error = SimError(exc.status_code, str(exc.detail), headers=exc.headers)
    return error.response()


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path. Starlette's own 405 names only the first
    route that matched the path, and GET and POST /videos are separate routes."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


async def _handle_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = first.get("loc", ())
    param = str(location[-1]) if location else None
    return SimError(400, str(first.get("msg", "Invalid request.")), param=param).response()


def install(app: FastAPI) -> None:
    app.add_exception_handler(SimError, _handle_sim_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
