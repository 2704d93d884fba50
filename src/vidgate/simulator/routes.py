"""The `/videos` API, mounted under the configured prefix. Routes parse, then delegate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from vidgate.simulator import downloads, errors, jobs, validation, views
from vidgate.simulator.deps import StateDep, api_guard
from vidgate.simulator.state import SimState

IdempotencyKey = Annotated[str | None, Header()]
OptionalQuery = Annotated[str | None, Query()]

router = APIRouter(dependencies=[Depends(api_guard)])


def _job(state: SimState, video_id: str) -> jobs.Job:
    job = state.jobs.get(video_id)
    if job is None:
        raise errors.not_found(video_id)
    return job


def _video_response(state: SimState, job: jobs.Job) -> Response:
    body = views.video(job, state.clock(), url_field=state.config.url_field)
    headers = {}
    if body["status"] in ("queued", "in_progress"):
        headers["openai-poll-after-ms"] = str(views.poll_after_ms(job))
    return JSONResponse(body, headers=headers)


@router.post("/videos")
async def create_video(
    request: Request, state: StateDep, idempotency_key: IdempotencyKey = None
) -> Response:
    params = validation.create_params(await validation.read_body(request))
    return _video_response(state, state.create_job(params, idempotency_key=idempotency_key))


@router.get("/videos")
async def list_videos(
    state: StateDep,
    after: OptionalQuery = None,
    limit: OptionalQuery = None,
    order: OptionalQuery = None,
) -> Response:
    params = validation.list_params(after, limit, order)
    page, has_more = state.jobs.page(
        after=params.after, limit=params.limit, descending=params.descending
    )
    return JSONResponse(
        views.video_list(page, state.clock(), has_more=has_more, url_field=state.config.url_field)
    )


@router.get("/videos/{video_id}")
async def retrieve_video(video_id: str, state: StateDep) -> Response:
    return _video_response(state, _job(state, video_id))


@router.delete("/videos/{video_id}")
async def delete_video(video_id: str, state: StateDep) -> Response:
    if state.jobs.delete(video_id) is None:
        raise errors.not_found(video_id)
    return JSONResponse(views.deleted(video_id))


@router.post("/videos/{video_id}/remix")
async def remix_video(
    video_id: str, request: Request, state: StateDep, idempotency_key: IdempotencyKey = None
) -> Response:
    source = _job(state, video_id)
    prompt = validation.prompt_param(await validation.read_body(request))
    status = jobs.phase(source, state.clock()).status
    if status != "completed":
        raise errors.SimError(
            400,
            f"Video '{video_id}' cannot be remixed: its status is '{status}', "
            "and only completed videos can be remixed.",
            param="video_id",
        )
    params = validation.CreateParams(
        prompt=prompt, model=source.model, seconds=source.seconds, size=source.size
    )
    job = state.create_job(params, idempotency_key=idempotency_key, remixed_from=source.id)
    return _video_response(state, job)


@router.get("/videos/{video_id}/content")
async def download_content(
    video_id: str, request: Request, state: StateDep, variant: OptionalQuery = None
) -> Response:
    name = validation.variant_param(variant)
    job = _job(state, video_id)
    return await downloads.media_response(state, job, name, request.headers.get("range"))
