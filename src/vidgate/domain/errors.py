"""vidgate's error tree. Each error carries its public code and HTTP status.

One handler in the api turns any ``VidgateError`` into the contract's envelope; nothing
else builds error JSON. Error codes are documented in docs/API.md.
"""

from __future__ import annotations

from typing import Any


class VidgateError(Exception):
    code = "INTERNAL_ERROR"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


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
