"""Kling's error envelope and codes, and a failed task's message, as neutral categories."""

from __future__ import annotations

from vidgate.providers.base import ErrorCategory, JobError

# A failed task carries only `task_status_msg`; these words in it mean the content check.
_POLICY_WORDS = (
    "risk control",
    "security polic",
    "content polic",
    "sensitive",
    "violat",
    "moderation",
    "inappropriate",
    "prohibited",
)
_CONTENT_CODE = "1301"  # Kling's code for "content security policy triggered"


def error_of(body: object) -> tuple[int | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    code, message = body.get("code"), body.get("message")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) else None,
    )


def category_of(code: int | None) -> ErrorCategory | None:
    """How a refused request is classed, by Kling's code (its "Error Code" table)."""
    if code is None:
        return None
    if 1100 <= code <= 1102:  # account exception, arrears, resource pack used up
        return ErrorCategory.INSUFFICIENT_CREDITS
    if code in (1300, 1301):  # platform or content-security policy
        return ErrorCategory.CONTENT_POLICY
    # Bad credentials (1000-1004), no permission for the model or route (1103), or an IP
    # outside the whitelist (1304): nothing this request can fix, another provider may.
    if 1000 <= code <= 1004 or code in (1103, 1304):
        return ErrorCategory.PROVIDER_UNAVAILABLE
    if 1200 <= code <= 1203:
        return ErrorCategory.INVALID_REQUEST
    return None


def failure(message: object) -> JobError:
    text = message.strip()[:500] if isinstance(message, str) and message.strip() else ""
    lowered = text.lower()
    if any(word in lowered for word in _POLICY_WORDS):
        return JobError(
            code=_CONTENT_CODE,
            message=text or "Kling's content check refused the task.",
            category=ErrorCategory.CONTENT_POLICY,
        )
    return JobError(
        code="failed",
        message=text or "The Kling task failed.",
        category=ErrorCategory.GENERATION_FAILED,
    )
