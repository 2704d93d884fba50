"""An OpenAI-compatible face: ``/v1/videos`` as the ``openai`` SDK's ``videos`` API calls it.

The same use cases as ``/api/video/tasks`` (``TaskService``), the same auth, request
limits, quotas and ``Idempotency-Key``; only the shapes differ (``openai_schemas``). A
video's ``id`` is vidgate's ``videoId``. Errors are answered in OpenAI's envelope
(``openai_errors``).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.routing import Match

from vidgate.api import openai_errors, patterns
from vidgate.api.deps import CurrentUser, RuntimeDep, ServiceDep
from vidgate.api.openai_schemas import (
    CREATE_BODY_SCHEMA,
    DeletedVideo,
    Video,
    VideoList,
)
from vidgate.api.routes import _idempotency_key
from vidgate.api.schemas import CreateTask
from vidgate.domain.models import Task
from vidgate.domain.status import TaskStatus
from vidgate.netguard import check_reference_url
from vidgate.providers.base import ContentStream
from vidgate.service import NewTask

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sora-2"  # the convention's default, used when the catalogue has it
VARIANTS = ("video", "thumbnail", "spritesheet")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# ``openai-poll-after-ms``: the SDK's poll helper waits this long between retrieves.
MIN_POLL_MS, MAX_POLL_MS, DEFAULT_POLL_MS = 200, 2000, 1000


router = APIRouter(
    prefix="/v1",
    route_class=openai_errors.OpenAIRoute,
    tags=["openai"],
    responses=openai_errors.ERRORS,
)


# -- create -----------------------------------------------------------------------------

_BRACKETED = re.compile(r"^([a-z_]+)\[([a-z_]+)\]$")
_CREATE_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": CREATE_BODY_SCHEMA},
        "multipart/form-data": {"schema": CREATE_BODY_SCHEMA},
    },
}


async def _read_body(request: Request) -> dict[str, Any]:
    """The create body, JSON or multipart (the SDK always sends multipart, objects as
    bracketed fields such as ``input_reference[image_url]``), as one dict."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields: dict[str, Any] = {}
        async with request.form() as form:
            for key, value in form.multi_items():  # an UploadFile is refused below
                match = _BRACKETED.match(key)
                if match is None:
                    fields[key] = value
                else:
                    parent = fields.setdefault(match[1], {})
                    if isinstance(parent, dict):
                        parent[match[2]] = value
        reference = fields.get("input_reference")
        if isinstance(reference, str) and reference.lstrip().startswith("{"):
            fields["input_reference"] = _json_object(reference, "input_reference")
        return fields
    raw = await request.body()
    if not raw.strip():
        raise openai_errors.InvalidRequest(
            "The request needs a JSON or multipart body with a 'prompt'.",
            code="MISSING_REQUIRED_PARAMETER",
            details={"field": "prompt"},
        )
    return _json_object(raw, "body")


def _json_object(raw: str | bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise openai_errors.InvalidRequest(
            f"'{name}' must be a JSON object.",
            code="INVALID_JSON" if name == "body" else "INVALID_TYPE",
            details={"field": name},
        )
    return value


def _reference_url(reference: Any) -> str | None:
    """vidgate's ``inputReference`` (an http(s) URL) from the convention's object form."""
    if reference is None:
        return None
    if isinstance(reference, UploadFile):
        raise openai_errors.NotSupported(
            "Uploading input_reference as a file is not supported by this server; "
            "send input_reference[image_url] with an http(s) URL of the image instead.",
            code="UNSUPPORTED_PARAMETER",
            details={"field": "input_reference"},
        )
    if not isinstance(reference, dict):
        raise openai_errors.InvalidRequest(
            "input_reference must be an object with image_url.",
            code="INVALID_TYPE",
            details={"field": "input_reference"},
        )
    if reference.get("file_id") is not None:
        raise openai_errors.NotSupported(
            "input_reference[file_id] is not supported by this server (it keeps no files); "
            "send input_reference[image_url] with an http(s) URL instead.",
            code="UNSUPPORTED_PARAMETER",
            details={"field": "input_reference"},
        )
    url = reference.get("image_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise openai_errors.InvalidRequest(
            "input_reference[image_url] must be an http(s) URL (data URLs are not supported).",
            details={"field": "input_reference"},
        )
    return url


def _create_task(fields: dict[str, Any], reference: str | None) -> CreateTask:
    """The body as ``POST /api/video/tasks`` would take it, so both faces validate alike."""
    wanted: dict[str, Any] = {
        k: fields[k] for k in ("prompt", "model", "seconds", "size") if k in fields
    }
    if "prompt" not in wanted:
        raise openai_errors.InvalidRequest(
            "Missing required parameter: 'prompt'.",
            code="MISSING_REQUIRED_PARAMETER",
            details={"field": "prompt"},
        )
    if reference is not None:
        wanted["input_reference"] = reference
    try:
        return CreateTask.model_validate(wanted)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = problem.get("loc", ())
        name = openai_errors.snake(str(where[0])) if where else "body"
        text = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        raise openai_errors.InvalidRequest(
            f"Invalid '{name}': {text}", details={"field": name}
        ) from None


@router.post(
    "/videos",
    response_model=Video,
    openapi_extra={"requestBody": _CREATE_BODY},
    summary="Create a video (OpenAI's createVideo)",
)
async def create_video(
    request: Request,
    service: ServiceDep,
    user: CurrentUser,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            json_schema_extra={"pattern": patterns.IDEMPOTENCY_KEY},
            description="As on POST /api/video/tasks: the same key and body give the same "
            "video for 24 h (`Idempotent-Replayed: true`).",
        ),
    ] = None,
) -> Video:
    key = _idempotency_key(idempotency_key)
    fields = await _read_body(request)
    reference = _reference_url(fields.get("input_reference"))
    body = _create_task(fields, reference)
    if reference is not None:
        await check_reference_url(
            reference, allow_private=runtime.settings.input_reference_allow_private
        )
    catalogue = runtime.providers.catalogue.entries
    default = DEFAULT_MODEL if DEFAULT_MODEL in catalogue else runtime.settings.default_model
    created = await service.create(
        user,
        NewTask(
            prompt=body.prompt,
            model=body.model or default,
            seconds=body.shown_seconds(),
            size=body.shown_size(),
            input_reference=body.input_reference,
            params=body.params(),
            legacy_fields=tuple(sorted({"seconds", "size"} & body.model_fields_set)),
        ),
        idempotency_key=key,
    )
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return Video.of(created.task)


# -- read, list, delete -----------------------------------------------------------------


def _poll_after_ms(task: Task) -> int | None:
    """How long the SDK's poll helper should wait: until vidgate itself looks again."""
    if task.status.terminal:
        return None
    if task.next_check_at is None:
        return DEFAULT_POLL_MS
    wait = (task.next_check_at - datetime.now(UTC)).total_seconds() * 1000
    return int(max(MIN_POLL_MS, min(MAX_POLL_MS, wait)))


@router.get("/videos/{video_id}", response_model=Video, summary="Retrieve a video")
async def retrieve_video(
    video_id: str, service: ServiceDep, user: CurrentUser, response: Response
) -> Video:
    task = await service.get(user, video_id)
    wait = _poll_after_ms(task)
    if wait is not None:
        response.headers["openai-poll-after-ms"] = str(wait)
    return Video.of(task)


@router.get("/videos", response_model=VideoList, summary="List the caller's videos")
async def list_videos(
    service: ServiceDep,
    user: CurrentUser,
    after: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
) -> VideoList:
    page = await service.list_after(
        user, after=after, limit=max(limit, 1), ascending=order == "asc"
    )
    items = page.items[:limit]
    has_more = page.next_cursor is not None or len(page.items) > limit
    return VideoList(
        data=[Video.of(task) for task in items],
        first_id=items[0].video_id if items else None,
        last_id=items[-1].video_id if items else None,
        has_more=has_more,
    )


@router.delete("/videos/{video_id}", response_model=DeletedVideo, summary="Delete a video")
async def delete_video(video_id: str, service: ServiceDep, user: CurrentUser) -> DeletedVideo:
    """Cancels the video if it is still being made, then deletes it: it is gone from
    every route of its owner, and its stored file and upstream job are deleted."""
    task = await service.delete(user, video_id)
    return DeletedVideo(id=task.video_id)


# -- content ----------------------------------------------------------------------------


_MP4 = {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}
_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": _MP4},
    206: {"description": "The part of the video the `Range` header asked for.", "content": _MP4},
    416: {"description": "The `Range` is outside the video."},
}


@router.get(
    "/videos/{video_id}/content",
    response_class=StreamingResponse,
    responses=_CONTENT,
    summary="Download a video's MP4",
)
async def download_content(
    video_id: str,
    service: ServiceDep,
    user: CurrentUser,
    variant: Annotated[
        str, Query(max_length=32, json_schema_extra={"enum": list(VARIANTS)})
    ] = "video",
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """``variant=video`` only: vidgate keeps no thumbnail or spritesheet (404)."""
    if variant not in VARIANTS:
        raise openai_errors.InvalidRequest(
            f"Invalid value: '{variant}'. Supported values are: 'video', 'thumbnail', "
            "and 'spritesheet'.",
            details={"field": "variant"},
        )
    task = await service.get(user, video_id)
    if variant != "video":
        raise openai_errors.VariantUnavailable(
            f"This server has no {variant} of video {video_id!r}; only variant=video.",
            details={"field": "variant"},
        )
    if task.status is not TaskStatus.COMPLETED:
        raise openai_errors.VariantUnavailable(
            f"Video {video_id!r} is not ready: its status is {Video.of(task).status!r}.",
            code="VIDEO_NOT_READY",
        )
    stream = await service.open_stream(user, video_id, range_header=range_header)
    return _media(stream)


def _media(stream: ContentStream | Path) -> Response:
    """The mirrored file (ranges served from it) or the upstream's bytes streamed through."""
    cache = {"cache-control": "private, max-age=300"}
    if isinstance(stream, Path):
        return FileResponse(stream, media_type="video/mp4", headers=cache)
    headers = {**stream.headers, **cache}
    headers.setdefault("accept-ranges", "bytes")
    return StreamingResponse(
        stream.chunks,
        status_code=stream.status,
        headers=headers,
        background=BackgroundTask(stream.aclose),
    )


# -- what the convention has and vidgate does not ---------------------------------------


@router.post("/videos/{video_id}/remix", response_model=Video, include_in_schema=False)
async def remix_video(video_id: str, user: CurrentUser) -> Video:
    """Not in the OpenAPI document, which lists what vidgate does; here so that an SDK's
    ``remix`` gets a clear answer instead of "Invalid URL"."""
    raise openai_errors.NotSupported(
        "Remixing a video is not supported by this server; create a new video instead.",
        details={"videoId": video_id},
    )


@router.post("/videos/edits", response_model=Video, include_in_schema=False)
@router.post("/videos/extensions", response_model=Video, include_in_schema=False)
@router.post("/videos/characters", include_in_schema=False)
async def other_creations(request: Request, user: CurrentUser) -> Video:
    """Edits, extensions and characters: not in the document either, answered clearly."""
    what = request.url.path.rsplit("/", 1)[-1]
    raise openai_errors.NotSupported(f"Video {what} are not supported by this server.")


_ANY_PATH = "/v1/{path:path}"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@router.api_route("/{path:path}", methods=list(_METHODS), include_in_schema=False)
async def unknown_url(request: Request) -> Response:
    """OpenAI's answers for a route it does not have (characters, edits, extensions...),
    and 405 with ``Allow`` for a method a ``/v1`` path does not take."""
    allowed = _allowed_methods(request)
    if allowed:
        raise openai_errors.MethodNotAllowed(
            f"Method {request.method} is not allowed on {request.url.path}.",
            headers={"Allow": ", ".join(allowed)},
        )
    raise openai_errors.UnknownUrl(f"Invalid URL ({request.method} {request.url.path})")


def _allowed_methods(request: Request) -> list[str]:
    """Every method another ``/v1`` route serves on this path."""
    routes = [r for r in router.routes if getattr(r, "path", None) != _ANY_PATH]
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
