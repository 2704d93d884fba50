"""One place that turns every failure into the contract's error envelope.

Routes raise ``VidgateError`` subclasses; framework errors (bad JSON, validation, unknown
routes) and anything unexpected are mapped here too, so a client never sees a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from vidgate.domain.errors import VidgateError
from vidgate.store.base import StoreUnavailable

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def envelope(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={
            "success": False,
            "error": {"code": code, "message": message, "details": details or {}},
        },
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _vidgate_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VidgateError)
    response = envelope(exc.http_status, exc.code, exc.message, exc.details)
    response.headers.update(exc.headers)
    return response


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return envelope(400, "INVALID_JSON", "The request body is not valid JSON.")
    fields = []
    for problem in problems:
        entry: dict[str, Any] = {
            "field": _field(tuple(problem.get("loc", ()))),
            # pydantic prefixes a validator's own message with "Value error, ".
            "problem": str(problem.get("msg", "")).removeprefix("Value error, "),
        }
        if problem.get("type") == "model_attributes_type" or problem.get("loc") == ("body",):
            entry["field"] = "body"
        fields.append(entry)
    first = fields[0] if fields else {"field": "body", "problem": "invalid"}
    message = f"Invalid {first['field']}: {first['problem']}"
    return envelope(422, "VALIDATION_ERROR", message, {"fields": fields})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
    response = envelope(exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = _allowed(request)
    return response


def _allowed(request: Request) -> str:
    """Every method the path takes. Starlette's 405 names only those of the first route
    with the path, and a path may have several (GET and POST /api/webhooks)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _store_unavailable(_: Request, exc: Exception) -> JSONResponse:
    logger.error("database unavailable: %s", exc)
    return envelope(503, "STORE_UNAVAILABLE", "The database is unavailable; try again shortly.")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return envelope(500, "INTERNAL_ERROR", "Something went wrong on our side; it has been logged.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(VidgateError, _vidgate_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
