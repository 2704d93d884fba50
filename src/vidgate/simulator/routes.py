"""The `/videos` API, mounted under the configured prefix. Routes parse, then delegate."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from vidgate.simulator import downloads, errors, hostile, jobs, validation, views
from vidgate.simulator.deps import StateDep, api_guard, wants_hostile
from vidgate.simulator.state import SimState

IdempotencyKey = Annotated[str | None, Header()]
OptionalQuery = Annotated[str | None, Query()]

logger = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(api_guard)])


def _job(state: SimState, video_id: str) -> jobs.Job:
    job = state.jobs.get(video_id)
    if job is None:
        raise errors.not_found(video_id)
    return job


def _video_response(
    state: SimState, job: jobs.Job, *, hostile_answer: bool = False, remember: bool = False
) -> Response:
    """The job's answer; `hostile_answer` corrupts it (hostile.py), `remember` keeps the
    progress it tells for a later "progress going backwards" answer to go below."""
    now = state.clock()
    body = views.video(job, now, url_field=state.config.url_field)
    headers = {}
    if body["status"] in ("queued", "in_progress"):
        headers["openai-poll-after-ms"] = str(views.poll_after_ms(job))
    if hostile_answer:
        last = state.last_progress.get(job.id, 0)
        variant = state.hostile_deck.deal(last_progress=last, url_field=state.config.url_field)
        state.stats.count_hostile(variant)
        logger.info(
            "simulator sent a hostile answer", extra={"videoId": job.id, "variant": variant}
        )
        return hostile.response(variant, body, last_progress=last, now=now, headers=headers)
    if remember:
        state.last_progress[job.id] = body["progress"]
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
async def retrieve_video(video_id: str, request: Request, state: StateDep) -> Response:
    return _video_response(
        state, _job(state, video_id), hostile_answer=wants_hostile(request), remember=True
    )


@router.delete("/videos/{video_id}")
async def delete_video(video_id: str, state: StateDep) -> Response:
    if state.jobs.delete(video_id) is None:
        raise errors.not_found(video_id)
    state.last_progress.pop(video_id, None)
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
