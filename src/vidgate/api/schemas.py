"""Request and response bodies, camelCase on the wire (API.md "The task object")."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from vidgate.api import openapi, patterns
from vidgate.domain.models import Attempt, Task, TaskError
from vidgate.domain.request import (
    ImageInput,
    ImageRole,
    VideoParams,
    duration_text,
    neutral_to_size,
    seconds_to_duration,
    size_to_neutral,
)
from vidgate.domain.status import TaskStatus

DEFAULT_SECONDS = "4"
DEFAULT_SIZE = "720x1280"
MAX_PROMPT = 32_000
MAX_IMAGES = 8
MAX_EXTRA_BYTES = 16 * 1024


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# Values checked by hand, whose pattern the document states (``vidgate.api.patterns``):
# an http(s) URL (the validators below and netguard check it), an ``Idempotency-Key``
# and a listing cursor (the routes check them).
HttpUrl = Annotated[str, Field(max_length=2048, json_schema_extra={"pattern": patterns.HTTP_URL})]
WebhookUrl = Annotated[
    str, Field(min_length=1, max_length=2048, json_schema_extra={"pattern": patterns.WEBHOOK_URL})
]
IdempotencyKey = Annotated[str, Field(json_schema_extra={"pattern": patterns.IDEMPOTENCY_KEY})]
Cursor = Annotated[str, Field(json_schema_extra={"format": patterns.CURSOR_FORMAT})]
EventId = Annotated[str, Field(json_schema_extra={"pattern": patterns.EVENT_ID})]


class ImageBody(Camel):
    url: HttpUrl
    role: Literal["first_frame", "last_frame", "reference"] = "first_frame"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if "\x00" in value or not value.startswith(("http://", "https://")):
            raise ValueError("images[].url must be an http(s) URL")
        return value


class CreateTask(Camel):
    """Unknown fields are ignored, so front ends may send extra context safely."""

    prompt: str = Field(
        min_length=1, max_length=MAX_PROMPT, json_schema_extra={"pattern": patterns.PROMPT}
    )
    model: (
        Annotated[
            str, Field(min_length=1, max_length=128, json_schema_extra={"pattern": patterns.NO_NUL})
        ]
        | None
    ) = None
    # The seed's Sora-style fields; which values a model takes is its capability table's
    # business (422 UNSUPPORTED_PARAMETER), not the schema's.
    seconds: str = Field(default=DEFAULT_SECONDS, pattern=r"^[0-9]{1,3}(\.[0-9]{1,2})?$")
    size: str = Field(default=DEFAULT_SIZE, pattern=r"^[0-9]{2,5}x[0-9]{2,5}$")
    input_reference: HttpUrl | None = None
    # The neutral fields (docs/API.md), translated by each provider's adapter.
    duration_seconds: float | None = Field(default=None, gt=0, le=600, allow_inf_nan=False)
    aspect_ratio: str | None = Field(default=None, pattern=r"^[0-9]{1,2}:[0-9]{1,2}$")
    resolution: str | None = Field(default=None, pattern=r"^([0-9]{3,4}[pP]|[248][kK])$")
    negative_prompt: (
        Annotated[str, Field(max_length=MAX_PROMPT, json_schema_extra={"pattern": patterns.NO_NUL})]
        | None
    ) = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    audio: bool | None = None
    images: list[ImageBody] = Field(default_factory=list, max_length=MAX_IMAGES)
    # Any JSON without a NUL character, under MAX_EXTRA_BYTES (which no schema can state).
    extra: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={
            "propertyNames": {"pattern": patterns.NO_NUL},
            "additionalProperties": {"$ref": openapi.JSON_WITHOUT_NUL_REF},
        },
    )
    # Where this task's events are also posted, signed with the user's task secret
    # (GET /api/webhooks/task-secret); docs/API.md "Webhooks".
    webhook_url: WebhookUrl | None = None

    @field_validator("resolution")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None

    @field_validator("extra")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(value, ensure_ascii=False)
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate: no database or upstream takes it
            raise ValueError("extra must be valid Unicode text") from None
        if size > MAX_EXTRA_BYTES:
            raise ValueError(f"extra must stay under {MAX_EXTRA_BYTES} bytes of JSON")
        if _has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value

    @field_validator("prompt", "model", "input_reference", "negative_prompt")
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
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and math.isfinite(value):
            return duration_text(float(value))
        return value

    def params(self) -> VideoParams:
        """The neutral request, with the Sora-style fields the client sent translated."""
        sent = self.model_fields_set
        duration = self.duration_seconds
        if duration is None and "seconds" in sent:
            duration = seconds_to_duration(self.seconds)
        ratio, resolution = self.aspect_ratio, self.resolution
        if "size" in sent:
            size_ratio, size_resolution = size_to_neutral(self.size)
            ratio = ratio or size_ratio
            resolution = resolution or size_resolution
        images = [ImageInput(url=i.url, role=ImageRole(i.role)) for i in self.images]
        if self.input_reference and not any(i.role is ImageRole.FIRST_FRAME for i in images):
            images.insert(0, ImageInput(url=self.input_reference, role=ImageRole.FIRST_FRAME))
        return VideoParams(
            duration_seconds=duration,
            aspect_ratio=ratio,
            resolution=resolution,
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            audio=self.audio,
            images=tuple(images),
            extra=self.extra,
        )

    def shown_seconds(self) -> str:
        if "seconds" not in self.model_fields_set and self.duration_seconds is not None:
            return duration_text(self.duration_seconds)
        return self.seconds

    def shown_size(self) -> str:
        if "size" not in self.model_fields_set and (self.aspect_ratio or self.resolution):
            return neutral_to_size(self.aspect_ratio, self.resolution) or self.size
        return self.size

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
    protocol: str | None = None
    upstream_model: str | None = None
    expires_at: datetime | None = None
    usage: dict[str, Any] | None = None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptView:
        binding = attempt.binding or {}
        return cls(
            protocol=binding.get("protocol"),
            upstream_model=binding.get("model"),
            expires_at=attempt.result_expires_at,
            usage=attempt.usage,
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
    # Beyond the seed: the neutral request, when the video's upstream copy expires,
    # and what the upstream reported it used.
    params: dict[str, Any] = Field(default_factory=dict)
    expires_at: datetime | None = None
    usage: dict[str, Any] | None = None

    @classmethod
    def of(cls, task: Task) -> TaskView:
        current = task.current_attempt
        expires_at = current.result_expires_at if current is not None else None
        error = _error(task.error)
        if (
            task.status is TaskStatus.COMPLETED
            and expires_at is not None
            and expires_at <= datetime.now(UTC)
            and task.video_url is not None
            and f"/api/video/tasks/{task.video_id}/stream" not in task.video_url
        ):
            # The upstream's own URL was handed out and has expired: say so (a video
            # vidgate serves itself answers for itself on /stream).
            error = ErrorBody(
                code="CONTENT_EXPIRED",
                message="The upstream's copy of this video has expired.",
            )
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
            error=error,
            metadata=task.metadata,
            attempts=[AttemptView.of(a) for a in task.attempts],
            created_at=task.created_at,
            updated_at=task.updated_at,
            completed_at=task.completed_at,
            params=task.params.to_json(),
            expires_at=expires_at,
            usage=current.usage if current is not None else None,
        )


class CapabilitiesView(Camel):
    """What a model can do; ``null`` means not restricted."""

    durations: list[float] | None
    duration_range: list[float] | None
    aspect_ratios: list[str] | None
    resolutions: list[str] | None
    image_roles: list[str]
    max_images: int | None
    audio: bool
    negative_prompt: bool
    seed: bool


class ModelProviderView(Camel):
    provider: str
    protocol: str
    upstream_model: str
    capabilities: CapabilitiesView


class ModelView(Camel):
    id: str
    capabilities: CapabilitiesView | None
    providers: list[ModelProviderView]
    retires_at: datetime | None
    replaced_by: str | None


class ModelList(Camel):
    items: list[ModelView]


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


def _has_nul(value: object) -> bool:
    """Whether a NUL hides in any key or string of a parsed JSON value."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _error(error: TaskError | None) -> ErrorBody | None:
    return None if error is None else ErrorBody(code=error.code, message=error.message)
