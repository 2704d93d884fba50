"""vidgate's error tree. Each error carries its public code and HTTP status.

One handler in the api turns any ``VidgateError`` into the contract's envelope; nothing
else builds error JSON. Error codes are documented in docs/API.md.
"""

from __future__ import annotations

import math
from typing import Any


class VidgateError(Exception):
    code = "INTERNAL_ERROR"
    http_status = 500

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code
        # Response headers that belong to the error (Retry-After, WWW-Authenticate).
        self.headers = headers or {}


class ValidationFailed(VidgateError):
    code = "VALIDATION_ERROR"
    http_status = 422


class TaskNotFound(VidgateError):
    code = "TASK_NOT_FOUND"
    http_status = 404

    def __init__(self, video_id: str) -> None:
        super().__init__(f"No task with videoId {video_id!r}.", details={"videoId": video_id})


class TaskNotCompleted(VidgateError):
    code = "TASK_NOT_COMPLETED"
    http_status = 409


class TaskNotRetryable(VidgateError):
    code = "TASK_NOT_RETRYABLE"
    http_status = 409


class ContentUnavailable(VidgateError):
    code = "CONTENT_UNAVAILABLE"
    http_status = 502


class UnknownModel(VidgateError):
    code = "UNKNOWN_MODEL"
    http_status = 422


class ModelRetired(VidgateError):
    """The model is past its ``retiresAt``; the details name its replacement."""

    code = "MODEL_RETIRED"
    http_status = 422


class UnsupportedParameter(VidgateError):
    """The model cannot do what was asked; nothing was sent upstream."""

    code = "UNSUPPORTED_PARAMETER"
    http_status = 422


class ContentExpired(VidgateError):
    """The upstream's copy of the video is gone and vidgate kept no mirror."""

    code = "CONTENT_EXPIRED"
    http_status = 410


class Conflict(VidgateError):
    """A compare-and-set lost against a concurrent writer more often than we retry."""

    code = "CONFLICT"
    http_status = 409


class TaskAlreadyFinished(VidgateError):
    code = "TASK_ALREADY_FINISHED"
    http_status = 409


class NotReady(VidgateError):
    code = "NOT_READY"
    http_status = 503


class Unauthenticated(VidgateError):
    """No valid credentials. ``code`` says which: AUTH_REQUIRED, TOKEN_EXPIRED,
    TOKEN_INVALID, TOKEN_CLAIMS_INVALID, API_KEY_INVALID, API_KEY_REVOKED."""

    code = "AUTH_REQUIRED"
    http_status = 401

    def __init__(self, message: str, *, code: str = "AUTH_REQUIRED") -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class AuthUnavailable(VidgateError):
    """Credentials cannot be checked now (the identity provider's key set is unreachable)."""

    code = "AUTH_UNAVAILABLE"
    http_status = 503


class Forbidden(VidgateError):
    code = "ADMIN_REQUIRED"
    http_status = 403


class TooManyRequests(VidgateError):
    """A limit was reached. ``code``: RATE_LIMITED, ACTIVE_TASK_LIMIT or DAILY_TASK_LIMIT."""

    code = "RATE_LIMITED"
    http_status = 429

    def __init__(
        self,
        message: str,
        *,
        code: str,
        retry_after: float,
        details: dict[str, Any] | None = None,
    ) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            message,
            code=code,
            details={**(details or {}), "retryAfterSeconds": seconds},
            headers={"Retry-After": str(seconds)},
        )
        self.retry_after = seconds


class InvalidIdempotencyKey(VidgateError):
    code = "INVALID_IDEMPOTENCY_KEY"
    http_status = 400


class InvalidHeader(VidgateError):
    """A request header (or its query-parameter stand-in) that is not well formed:
    ``Last-Event-ID``, ``Prefer``. Each use names its own code."""

    code = "INVALID_HEADER"
    http_status = 400


class IdempotencyKeyReused(VidgateError):
    """The same Idempotency-Key came with a different body (IETF draft: 422)."""

    code = "IDEMPOTENCY_KEY_REUSED"
    http_status = 422


class PayloadTooLarge(VidgateError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413
