"""Errors of the ``/v1`` face, in OpenAI's envelope ``{"error": {message, type, param, code}}``.

Routes raise vidgate's own errors (``VidgateError``; the few only this face has are below);
``OpenAIRoute`` renders them, and its dependencies' (auth, request limits), with the
statuses the ``openai`` SDK turns into ``BadRequestError``, ``NotFoundError``,
``AuthenticationError``, ``RateLimitError``. The rest of vidgate keeps its own envelope.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidgate.api.openai_schemas import ErrorResponse
from vidgate.domain.errors import VidgateError
from vidgate.store.base import StoreUnavailable

logger = logging.getLogger(__name__)


class VariantUnavailable(VidgateError):
    code = "VARIANT_NOT_AVAILABLE"
    http_status = 404


class InvalidRequest(VidgateError):
    """Bad input found while reading the convention's body (``code`` says what)."""

    code = "INVALID_VALUE"
    http_status = 400


class NotSupported(VidgateError):
    """A part of the convention vidgate does not do (remix, uploads, ``file_id``...)."""

    code = "NOT_SUPPORTED"
    http_status = 400


class UnknownUrl(VidgateError):
    code = "UNKNOWN_URL"
    http_status = 404


class MethodNotAllowed(VidgateError):
    code = "METHOD_NOT_ALLOWED"
    http_status = 405


# -- errors in OpenAI's envelope ---------------------------------------------------------

# vidgate's 422s are what OpenAI answers with 400 (the SDK's BadRequestError); a reused
# Idempotency-Key keeps the IETF draft's 422. Content that is not (or no longer) there
# is a 404, as the convention has it, and so is an unknown or retired model (OpenAI's
# ``model_not_found``).
_STATUS_BY_CODE = {
    "TASK_NOT_COMPLETED": 404,
    "CONTENT_EXPIRED": 404,
    "UNKNOWN_MODEL": 404,
    "MODEL_RETIRED": 404,
}
_CODES = {"UNKNOWN_MODEL": "model_not_found"}
_KEEP_422 = {"IDEMPOTENCY_KEY_REUSED"}
_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    """A field as the convention names it (``inputReference`` -> ``input_reference``)."""
    return {"durationSeconds": "seconds", "aspectRatio": "size", "resolution": "size"}.get(
        name, _CAMEL.sub("_", name).lower()
    )


def _param(details: dict[str, Any]) -> str | None:
    field = details.get("field")
    if field is None and isinstance(details.get("fields"), list) and details["fields"]:
        field = details["fields"][0].get("field")
    return snake(field) if isinstance(field, str) and field != "body" else None


def openai_error(
    status: int,
    message: str,
    *,
    code: str | None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    kind = "server_error" if status >= 500 else _TYPES.get(status, "invalid_request_error")
    body = ErrorResponse.model_validate(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _render(exc: Exception) -> JSONResponse:
    """The OpenAI-shaped answer to an error a ``/v1`` route raised."""
    if isinstance(exc, VidgateError):
        status = _STATUS_BY_CODE.get(exc.code, exc.http_status)
        if status == 422 and exc.code not in _KEEP_422:
            status = 400
        param = _param(exc.details)
        if exc.code in ("UNKNOWN_MODEL", "MODEL_RETIRED"):
            param = "model"
        code = _CODES.get(exc.code, exc.code.lower())
        return openai_error(status, exc.message, code=code, param=param, headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        problem = exc.errors()[0] if exc.errors() else {}
        where = problem.get("loc", ())
        param = str(where[-1]) if where else None
        text = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        return openai_error(400, f"Invalid '{param}': {text}", code="invalid_value", param=param)
    if isinstance(exc, StoreUnavailable):
        logger.error("database unavailable: %s", exc)
        return openai_error(
            503, "The database is unavailable; try again shortly.", code="store_unavailable"
        )
    assert isinstance(exc, StarletteHTTPException)
    return openai_error(exc.status_code, str(exc.detail), code=None, headers=exc.headers)


class OpenAIRoute(APIRoute):
    """A route whose errors, its dependencies' included (auth, request limits), are
    answered in OpenAI's envelope. Anything unexpected still goes to the app's handler,
    which logs it and answers 500 without detail."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handle(request)
            except (
                VidgateError,
                RequestValidationError,
                StoreUnavailable,
                StarletteHTTPException,
            ) as exc:
                return _render(exc)

        return answer


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "invalid_request_error: bad input",
        401: "authentication_error",
        403: "permission_error",
        404: "not found",
        422: "idempotency_key_reused",
        429: "rate_limit_error (Retry-After)",
        500: "server_error",
        503: "server_error",
    }.items()
}
