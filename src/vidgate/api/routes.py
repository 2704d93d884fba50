"""REST routes (API.md "HTTP routes"): parse, authorise, delegate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from vidgate.api.deps import CurrentUser, RuntimeDep, ServiceDep
from vidgate.api.schemas import (
    ContentView,
    CreateTask,
    Envelope,
    ErrorEnvelope,
    TaskPage,
    TaskView,
)
from vidgate.domain.status import TaskStatus
from vidgate.service import NewTask

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
    body: CreateTask, service: ServiceDep, user: CurrentUser, runtime: RuntimeDep
) -> Envelope[TaskView]:
    task = await service.create(
        user,
        NewTask(
            prompt=body.prompt,
            model=body.model or runtime.settings.default_model,
            seconds=body.seconds,
            size=body.size,
            input_reference=body.input_reference,
        ),
    )
    return Envelope(data=TaskView.of(task))


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
    user: CurrentUser,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    """The video through vidgate (Range forwarded), for upstreams without a public URL."""
    stream = await service.open_stream(user, video_id, range_header=range_header)
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
