"""Request and response bodies, camelCase on the wire (API.md "The task object")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from vidgate.domain.models import Attempt, Task, TaskError

SECONDS = ("4", "8", "12")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
MAX_PROMPT = 32_000

Seconds = Literal["4", "8", "12"]
Size = Literal["720x1280", "1280x720", "1024x1792", "1792x1024"]


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CreateTask(Camel):
    """Unknown fields are ignored, so front ends may send extra context safely."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    seconds: Seconds = "4"
    size: Size = "720x1280"
    input_reference: str | None = Field(default=None, max_length=2048)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value

    @field_validator("prompt", "model", "input_reference")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # No database text column (nor any upstream) takes a NUL character.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("seconds", mode="before")
    @classmethod
    def _seconds_as_text(cls, value: Any) -> Any:
        # "seconds": 8 is a natural thing to send; the contract's values are strings.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("input_reference")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("inputReference must be an http(s) URL")
        return value


class ErrorBody(Camel):
    code: str
    message: str


class AttemptView(Camel):
    attempt: int
    provider: str
    external_video_id: str | None
    status: str
    submitted_at: datetime | None
    finished_at: datetime | None
    error: ErrorBody | None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptView:
        return cls(
            attempt=attempt.number,
            provider=attempt.provider,
            external_video_id=attempt.external_id,
            status=attempt.upstream_status or str(attempt.state),
            submitted_at=attempt.submitted_at,
            finished_at=attempt.finished_at,
            error=_error(attempt.error),
        )


class TaskView(Camel):
    video_id: str
    user_id: str
    status: str
    progress: int
    prompt: str
    model: str
    seconds: str
    size: str
    input_reference: str | None
    external_video_id: str | None
    video_url: str | None
    error: ErrorBody | None
    metadata: dict[str, Any]
    attempts: list[AttemptView]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> TaskView:
        return cls(
            video_id=task.video_id,
            user_id=task.user_id,
            status=str(task.status),
            progress=task.progress,
            prompt=task.prompt,
            model=task.model,
            seconds=task.seconds,
            size=task.size,
            input_reference=task.input_reference,
            external_video_id=task.external_id,
            video_url=task.video_url,
            error=_error(task.error),
            metadata=task.metadata,
            attempts=[AttemptView.of(a) for a in task.attempts],
            created_at=task.created_at,
            updated_at=task.updated_at,
            completed_at=task.completed_at,
        )


class TaskPage(Camel):
    items: list[TaskView]
    next_cursor: str | None


class TaskList(Camel):
    items: list[TaskView]


class ContentView(Camel):
    video_id: str
    external_video_id: str | None
    url: str


class Health(Camel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: T


class ErrorEnvelope(BaseModel):
    success: Literal[False] = False
    error: dict[str, Any]


def _error(error: TaskError | None) -> ErrorBody | None:
    return None if error is None else ErrorBody(code=error.code, message=error.message)
