"""The OpenAI Videos API's shapes (``../shared/openai-videos.openapi.json``) for vidgate's
``/v1`` face: the video object, its list and deletion answers, the error envelope, and
how a vidgate task reads as an OpenAI video.

These bodies are snake_case because that is the convention the ``openai`` SDK speaks;
everything else vidgate answers stays camelCase (API.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vidgate.api import patterns
from vidgate.domain.models import Task
from vidgate.domain.status import TaskStatus

VideoStatus = Literal["queued", "in_progress", "completed", "failed"]

# CANCELLED and EXPIRED have no word of their own in the convention; both are ends that
# produced no video, which is what "failed" tells a client (the error says which).
STATUS: dict[TaskStatus, VideoStatus] = {
    TaskStatus.QUEUED: "queued",
    TaskStatus.PROCESSING: "in_progress",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "failed",
    TaskStatus.EXPIRED: "failed",
}
CANCELLED_ERROR = ("cancelled", "The video was cancelled before it finished.")


class VideoError(BaseModel):
    code: str
    message: str


class Video(BaseModel):
    """``VideoResource``: every key present, nullable ones an explicit null."""

    id: str = Field(description="vidgate's videoId.")
    object: Literal["video"] = "video"
    model: str
    status: VideoStatus
    progress: int = Field(ge=0, le=100)
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str | None
    size: str
    seconds: str
    remixed_from_video_id: str | None = None
    error: VideoError | None
    # Beyond the spec (allowed: it closes no object): the upstream's job id, so that a
    # task is named by both of its ids here too (API.md "The two IDs").
    external_video_id: str | None = Field(
        description="The upstream's id of the current attempt (null until it accepted it)."
    )

    @classmethod
    def of(cls, task: Task) -> Video:
        current = task.current_attempt
        expires = current.result_expires_at if current is not None else None
        return cls(
            id=task.video_id,
            model=task.model,
            status=STATUS[task.status],
            progress=100 if task.status is TaskStatus.COMPLETED else task.progress,
            created_at=int(task.created_at.timestamp()),
            completed_at=_unix(task.completed_at) if task.status.terminal else None,
            expires_at=_unix(expires) if task.status is TaskStatus.COMPLETED else None,
            prompt=task.prompt,
            size=task.size,
            seconds=task.seconds,
            error=_error(task),
            external_video_id=task.external_id,
        )


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedVideo(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error envelope, which the SDK reads into its ``APIStatusError``."""

    model_config = ConfigDict(title="OpenAIErrorResponse")

    error: ErrorDetail


# ``CreateVideoJsonBody`` as vidgate takes it (JSON, or the same fields as multipart with
# ``input_reference[image_url]``): the spec's enums for ``seconds`` and ``size`` (the model's
# own table may allow others), a prompt with something besides spaces and no NUL, and
# ``input_reference`` only as an http(s) ``image_url`` (no uploads, no ``file_id``, no
# data URL). Whether the image's host is public is decided by DNS when asked (400).
CREATE_BODY_SCHEMA: dict[str, Any] = {
    "title": "CreateVideoBody",
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {
            "type": "string",
            "minLength": 1,
            "maxLength": 32_000,
            "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$",
        },
        "model": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": "^[^\\x00]+$",
            "description": "A model of GET /api/models; `sora-2` when absent (if catalogued, "
            "else the server's default). An unknown one is answered 404 model_not_found.",
        },
        "seconds": {"type": "string", "enum": ["4", "8", "12"]},
        "size": {"type": "string", "enum": ["720x1280", "1280x720", "1024x1792", "1792x1024"]},
        "input_reference": {
            "type": "object",
            "required": ["image_url"],
            "properties": {
                "image_url": {"type": "string", "maxLength": 2048, "pattern": patterns.HTTP_URL}
            },
            "additionalProperties": False,
        },
    },
}


def _unix(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _error(task: Task) -> VideoError | None:
    if task.status is TaskStatus.CANCELLED:
        code, message = CANCELLED_ERROR
        return VideoError(code=code, message=message)
    if task.status in (TaskStatus.FAILED, TaskStatus.EXPIRED):
        error = task.error
        if error is None:
            return VideoError(code="failed", message="The video could not be generated.")
        return VideoError(code=error.code.lower(), message=error.message)
    return None
