"""Ark's error envelope and codes (of a refused request or a failed task) as neutral
categories and job errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vidgate.providers.base import ErrorCategory, JobError

_RATE_CODES = ("RequestBurstTooFast", "QuotaExceeded")
_CREDIT_CODES = ("AccountOverdueError", "SetLimitExceeded", "OperationDenied.ServiceOverdue")


def category_of(code: str) -> ErrorCategory:
    """Ark's error code (of a refused request or a failed task) as a neutral category."""
    if "SensitiveContentDetected" in code or "RiskDetection" in code:
        return ErrorCategory.CONTENT_POLICY
    if code.startswith("RateLimitExceeded") or code in _RATE_CODES:
        return ErrorCategory.RATE_LIMITED
    if code in _CREDIT_CODES:
        return ErrorCategory.INSUFFICIENT_CREDITS
    if code == "ServerOverloaded":
        return ErrorCategory.PROVIDER_UNAVAILABLE
    if code.startswith(
        (
            "InvalidParameter",
            "MissingParameter",
            "InvalidEndpoint",
            "ModelNotOpen",
            "AccessDenied",
            "AuthenticationError",
            "OperationDenied",
        )
    ):
        return ErrorCategory.INVALID_REQUEST
    return ErrorCategory.GENERATION_FAILED


def error_of(body: object) -> tuple[str | None, str | None]:
    """``(code, message)`` of Ark's ``{"error": {...}}`` envelope, capped in length."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (
        code[:128] if isinstance(code, str) and code else None,
        message[:500] if isinstance(message, str) and message else None,
    )


def job_error(
    data: Mapping[str, Any],
    default_code: str,
    default_message: str,
    *,
    category: ErrorCategory | None = None,
) -> JobError:
    code, message = error_of(data)
    return JobError(
        code=code or default_code,
        message=message or default_message,
        category=category or (category_of(code) if code else ErrorCategory.GENERATION_FAILED),
    )
