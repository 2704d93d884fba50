"""REST routes (API.md "HTTP routes"): parse, authorise, delegate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

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
    Envelope,
    ErrorEnvelope,
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

MAX_IDEMPOTENCY_KEY = 255

router = APIRouter()
_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorEnvelope, "description": "TASK_NOT_FOUND"},
    422: {"model": ErrorEnvelope, "description": "VALIDATION_ERROR"},
}


@router.post(
    "/api/video/tasks",
    status_code=201,
    response_model=Envelope[TaskView],
    responses=_ERRORS,
    tags=["tasks"],
)
async def create_task(
    body: CreateTask,
    service: ServiceDep,
    user: CurrentUser,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Makes a retried create safe: the same key and body give the same "
            "task (with `Idempotent-Replayed: true`) for 24 h; the same key with another "
            "body is refused with 422 IDEMPOTENCY_KEY_REUSED.",
        ),
    ] = None,
) -> Envelope[TaskView]:
    params = body.params()
    for image in params.images:  # inputReference is the first of them
        await check_reference_url(
            image.url, allow_private=runtime.settings.input_reference_allow_private
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
        ),
        idempotency_key=_idempotency_key(idempotency_key),
    )
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return Envelope(data=TaskView.of(created.task))


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
    cursor: Annotated[str | None, Query(max_length=512)] = None,
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
    responses={200: {"content": {"video/mp4": {}}}, **_ERRORS},
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
    responses=_ERRORS,
    tags=["tasks"],
)
async def cancel_task(video_id: str, service: ServiceDep, user: CurrentUser) -> Envelope[TaskView]:
    return Envelope(data=TaskView.of(await service.cancel(user, video_id)))


@router.post(
    "/api/video/tasks/{video_id}/retry",
    response_model=Envelope[TaskView],
    responses=_ERRORS,
    tags=["tasks"],
)
async def retry_task(video_id: str, service: ServiceDep, user: CurrentUser) -> Envelope[TaskView]:
    return Envelope(data=TaskView.of(await service.retry(user, video_id)))


@router.get(
    "/api/admin/tasks",
    response_model=Envelope[TaskList],
    responses={403: {"model": ErrorEnvelope, "description": "ADMIN_REQUIRED"}},
    tags=["admin"],
)
async def admin_find_tasks(
    service: ServiceDep,
    admin: AdminPrincipal,
    video_id: Annotated[str | None, Query(alias="videoId", max_length=128)] = None,
    external_video_id: Annotated[str | None, Query(alias="externalVideoId", max_length=255)] = None,
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
