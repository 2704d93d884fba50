"""REST routes (API.md "HTTP routes"): parse, authorise, delegate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from vidgate.api import openapi, prefer
from vidgate.api.deps import (
    AdminPrincipal,
    CurrentUser,
    RuntimeDep,
    ServiceDep,
    current_principal,
)
from vidgate.api.schemas import (
    ContentView,
    CreateTask,
    Cursor,
    Envelope,
    ErrorEnvelope,
    IdempotencyKey,
    ModelList,
    ModelView,
    TaskList,
    TaskPage,
    TaskView,
)
from vidgate.domain.errors import InvalidIdempotencyKey, ValidationFailed
from vidgate.domain.status import TaskStatus
from vidgate.netguard import check_reference_url
from vidgate.service import NewTask
from vidgate.webhooks.urls import check_webhook_url

MAX_IDEMPOTENCY_KEY = 255

router = APIRouter()
_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorEnvelope, "description": "TASK_NOT_FOUND"},
    422: {"model": ErrorEnvelope, "description": "VALIDATION_ERROR"},
}
# The video: whole, or the part a Range asked for; 410 once the upstream's copy expired.
_STREAM: dict[int | str, dict[str, object]] = {
    200: {"content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}},
    206: {
        "description": "The part of the video the `Range` header asked for.",
        "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
    },
    410: {"model": ErrorEnvelope, "description": "CONTENT_EXPIRED"},
    # Starlette's own answers for a mirrored file (FileResponse reads the Range itself).
    400: {
        "model": ErrorEnvelope,
        "description": "A malformed `Range` on a mirrored video is answered in text/plain.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    416: {
        "description": "The `Range` is outside the video.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
        "headers": {"Content-Range": {"schema": {"type": "string"}}},
    },
    502: {"model": ErrorEnvelope, "description": "CONTENT_UNAVAILABLE"},
}
_NOT_READY: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorEnvelope, "description": "TASK_NOT_COMPLETED"},
}
_HELD: dict[int | str, dict[str, object]] = {
    200: {
        "model": Envelope[TaskView],
        "description": "`Prefer: wait` and the task ended in time: the finished task.",
    },
    400: {
        "model": ErrorEnvelope,
        "description": "INVALID_JSON, INVALID_IDEMPOTENCY_KEY, INVALID_PREFER",
    },
}


@router.post(
    "/api/video/tasks",
    status_code=201,
    response_model=Envelope[TaskView],
    responses={**_ERRORS, **_HELD},
    tags=["tasks"],
)
async def create_task(
    body: CreateTask,
    service: ServiceDep,
    user: CurrentUser,
    runtime: RuntimeDep,
    request: Request,
    response: Response,
    prefer_header: Annotated[
        str | None,
        Header(
            alias="Prefer",
            description="`wait=N` (RFC 7240): hold the answer up to min(N, 60) s; a task "
            "that ends meanwhile is answered 200, finished. `Preference-Applied` says "
            "what was honoured; other preferences are ignored.",
        ),
    ] = None,
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Header(
            alias="Idempotency-Key",
            description="Makes a retried create safe: the same key and body give the same "
            "task (with `Idempotent-Replayed: true`) for 24 h; the same key with another "
            "body is refused with 422 IDEMPOTENCY_KEY_REUSED.",
        ),
    ] = None,
) -> Envelope[TaskView]:
    # Every Prefer header counts, not only the one ``prefer_header`` declares for the schema.
    wait = prefer.requested_wait(request.headers.getlist("prefer"))
    params = body.params()
    for image in params.images:  # inputReference is the first of them
        await check_reference_url(
            image.url, allow_private=runtime.settings.input_reference_allow_private
        )
    if body.webhook_url is not None:
        await check_webhook_url(
            body.webhook_url,
            allow_private=runtime.settings.webhook_allow_private,
            field="webhookUrl",
        )
    created = await service.create(
        user,
        NewTask(
            prompt=body.prompt,
            model=body.model or runtime.settings.default_model,
            seconds=body.shown_seconds(),
            size=body.shown_size(),
            input_reference=body.input_reference,
            params=params,
            legacy_fields=tuple(sorted({"seconds", "size"} & body.model_fields_set)),
            webhook_url=body.webhook_url,
        ),
        idempotency_key=_idempotency_key(idempotency_key),
    )
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    task = created.task
    if wait is not None:  # a replay waits too, for the same task
        assert runtime.notifier is not None, "the create route is only mounted where the api runs"
        response.headers["Preference-Applied"] = f"wait={wait}"
        task = await prefer.settle(runtime.notifier, service, user, task, wait)
        if task.status.terminal:
            response.status_code = 200
    return Envelope(data=TaskView.of(task))


def _idempotency_key(raw: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header: the IETF draft's quoted string, or the
    bare token most clients send."""
    if raw is None:
        return None
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not all(" " <= c <= "~" for c in key):
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters.",
            details={"field": "Idempotency-Key"},
        )
    return key


@router.get("/api/models", response_model=Envelope[ModelList], tags=["models"])
async def list_models(runtime: RuntimeDep, user: CurrentUser) -> Envelope[ModelList]:
    """Every model a task may name: what it can do, who serves it, when it retires."""
    entries = runtime.providers.catalogue.entries.values()
    return Envelope(data=ModelList(items=[ModelView.model_validate(e.to_json()) for e in entries]))


@router.get("/api/video/tasks", response_model=Envelope[TaskPage], tags=["tasks"])
async def list_tasks(
    service: ServiceDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        Cursor | None,
        Query(
            max_length=512,
            description="The `nextCursor` of the page before; any other value is answered "
            "422 VALIDATION_ERROR.",
        ),
    ] = None,
    status: TaskStatus | None = None,
) -> Envelope[TaskPage]:
    page = await service.list(user, status=status, limit=limit, cursor=cursor)
    return Envelope(
        data=TaskPage(items=[TaskView.of(t) for t in page.items], next_cursor=page.next_cursor)
    )


@router.get(
    "/api/video/tasks/{video_id}",
    response_model=Envelope[TaskView],
    responses=_ERRORS,
    tags=["tasks"],
)
async def get_task(video_id: str, service: ServiceDep, user: CurrentUser) -> Envelope[TaskView]:
    return Envelope(data=TaskView.of(await service.get(user, video_id)))


@router.get(
    "/api/video/tasks/{video_id}/content",
    response_model=Envelope[ContentView],
    responses={**_ERRORS, 409: {"model": ErrorEnvelope, "description": "TASK_NOT_COMPLETED"}},
    tags=["tasks"],
)
async def get_content(
    video_id: str, service: ServiceDep, user: CurrentUser
) -> Envelope[ContentView]:
    content = await service.content(user, video_id)
    return Envelope(
        data=ContentView(
            video_id=content.video_id,
            external_video_id=content.external_video_id,
            url=content.url,
        )
    )


@router.get(
    "/api/video/tasks/{video_id}/stream",
    response_class=StreamingResponse,
    responses={**_STREAM, **_ERRORS, **_NOT_READY},
    openapi_extra={openapi.QUERY_CREDENTIAL: "access_token"},
    tags=["tasks"],
)
async def stream_content(
    video_id: str,
    service: ServiceDep,
    request: Request,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    access_token: Annotated[
        str | None,
        Query(
            max_length=128,
            description="The token in the task's `videoUrl`: lets a `<video>` element, "
            "which cannot send credentials, play the video.",
        ),
    ] = None,
) -> Response:
    """The video through vidgate (Range forwarded), for upstreams without a public URL."""
    if access_token is not None:
        stream = await service.open_stream_with_access(
            video_id, access_token, range_header=range_header
        )
    else:
        principal = await current_principal(request, None)
        stream = await service.open_stream(principal.user_id, video_id, range_header=range_header)
    if isinstance(stream, Path):  # mirrored: ranges served from the file itself
        return FileResponse(
            stream, media_type="video/mp4", headers={"cache-control": "private, max-age=300"}
        )
    headers = dict(stream.headers)
    headers.setdefault("accept-ranges", "bytes")
    headers["cache-control"] = "private, max-age=300"
    return StreamingResponse(
        stream.chunks,
        status_code=stream.status,
        headers=headers,
        background=BackgroundTask(stream.aclose),
    )


@router.post(
    "/api/video/tasks/{video_id}/cancel",
    response_model=Envelope[TaskView],
    responses={
        **_ERRORS,
        409: {"model": ErrorEnvelope, "description": "TASK_ALREADY_FINISHED, CONFLICT"},
    },
    tags=["tasks"],
)
async def cancel_task(video_id: str, service: ServiceDep, user: CurrentUser) -> Envelope[TaskView]:
    return Envelope(data=TaskView.of(await service.cancel(user, video_id)))


@router.post(
    "/api/video/tasks/{video_id}/retry",
    response_model=Envelope[TaskView],
    responses={
        **_ERRORS,
        409: {"model": ErrorEnvelope, "description": "TASK_NOT_RETRYABLE, CONFLICT"},
    },
    tags=["tasks"],
)
async def retry_task(video_id: str, service: ServiceDep, user: CurrentUser) -> Envelope[TaskView]:
    return Envelope(data=TaskView.of(await service.retry(user, video_id)))


@router.get(
    "/api/admin/tasks",
    response_model=Envelope[TaskList],
    responses={403: {"model": ErrorEnvelope, "description": "ADMIN_REQUIRED"}},
    # Exactly one of the two ids: one object parameter can say so, two parameters cannot.
    openapi_extra={"parameters": [openapi.ADMIN_TASK_LOOKUP]},
    tags=["admin"],
)
async def admin_find_tasks(
    service: ServiceDep,
    admin: AdminPrincipal,
    video_id: Annotated[
        str | None, Query(alias="videoId", max_length=128, include_in_schema=False)
    ] = None,
    external_video_id: Annotated[
        str | None, Query(alias="externalVideoId", max_length=255, include_in_schema=False)
    ] = None,
) -> Envelope[TaskList]:
    """Support: find a task of any user by vidgate's id or by the upstream's (admin role)."""
    if (video_id is None) == (external_video_id is None):
        raise ValidationFailed(
            "Give exactly one of videoId and externalVideoId.",
            details={"fields": [{"field": "videoId", "problem": "exactly one id is needed"}]},
        )
    found = await service.find_any(
        admin.user_id, video_id=video_id, external_video_id=external_video_id
    )
    return Envelope(data=TaskList(items=[TaskView.of(t) for t in found]))
