"""Kling's video routes: create and query for text2video and image2video. Routes parse,
check, then delegate to the shared job store; answers are in the ``data`` envelope."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from vidgate.simulator import faults, jobs
from vidgate.simulator.deps import StateDep, api_guard
from vidgate.simulator.protocols.kling import auth, tasks, validation
from vidgate.simulator.protocols.kling.envelope import KlingError, invalid, read_object, success
from vidgate.simulator.state import SimState

logger = logging.getLogger(__name__)

PROTOCOL = "kling"
# Prompt triggers beyond the shared [fail] / [stuck]: [error] fails the task like an
# internal generation error; [blocked] is refused at creation by the content check
# (400/1301); [concurrency] is refused as over the resource pack's parallel limit (429/1303).
ERROR_TRIGGER = "[error]"
BLOCKED_TRIGGER = "[blocked]"
CONCURRENCY_TRIGGER = "[concurrency]"
# task_status_msg of failed tasks: the vendor documents no wording (UNCONFIRMED); these
# paraphrase its error table.
CONTENT_FAILURE = "The content triggered the platform's content security policy"
GENERATION_FAILURE = "Video generation failed due to an internal error, please try again"

OptionalQuery = Annotated[str | None, Query()]


async def receive_body(request: Request) -> None:
    """Take the whole body in before latency or faults apply: a request that reached Kling
    in full is acted on even when its client goes away while waiting for the answer, the
    ambiguity ``external_task_id`` lets the client resolve. (Starlette keeps the body.)"""
    try:
        await request.body()
    except ClientDisconnect:
        raise KlingError(400, 1200, "The request body did not arrive") from None


router = APIRouter(
    dependencies=[Depends(receive_body), Depends(api_guard), Depends(auth.require_token)]
)


def index_of(state: SimState) -> tasks.TaskIndex:
    index = state.protocol_state.setdefault(PROTOCOL, tasks.TaskIndex())
    assert isinstance(index, tasks.TaskIndex)
    return index


@router.post("/v1/videos/text2video")
async def create_text2video(request: Request, state: StateDep) -> Response:
    return await _create(validation.TEXT2VIDEO, request, state)


@router.post("/v1/videos/image2video")
async def create_image2video(request: Request, state: StateDep) -> Response:
    return await _create(validation.IMAGE2VIDEO, request, state)


@router.get("/v1/videos/text2video/{task_id}")
async def get_text2video(task_id: str, request: Request, state: StateDep) -> Response:
    return _query(validation.TEXT2VIDEO, task_id, request, state)


@router.get("/v1/videos/image2video/{task_id}")
async def get_image2video(task_id: str, request: Request, state: StateDep) -> Response:
    return _query(validation.IMAGE2VIDEO, task_id, request, state)


@router.get("/v1/videos/text2video")
async def list_text2video(
    request: Request, state: StateDep, pageNum: OptionalQuery = None, pageSize: OptionalQuery = None
) -> Response:
    return _list(validation.TEXT2VIDEO, request, state, pageNum, pageSize)


@router.get("/v1/videos/image2video")
async def list_image2video(
    request: Request, state: StateDep, pageNum: OptionalQuery = None, pageSize: OptionalQuery = None
) -> Response:
    return _list(validation.IMAGE2VIDEO, request, state, pageNum, pageSize)


async def _create(family: str, request: Request, state: SimState) -> Response:
    params = validation.create_params(family, await read_object(request))
    index = index_of(state)
    if params.external_task_id is not None and params.external_task_id in index.by_external:
        # The vendor: external_task_id "must be unique within a single user account".
        raise invalid(f"external_task_id {params.external_task_id} already exists")
    if BLOCKED_TRIGGER in params.prompt:
        raise KlingError(400, 1301)
    if CONCURRENCY_TRIGGER in params.prompt:
        raise KlingError(429, 1303)
    task = tasks.Task(
        task_id=tasks.new_task_id(),
        family=family,
        external_task_id=params.external_task_id,
        duration=params.duration,
        mode=params.mode,
        video_id=tasks.new_video_id(),
    )
    job = _new_job(state, task, params)
    index.add(task)
    logger.debug(
        "simulator created a kling task",
        extra={"videoId": task.task_id, "family": family, "outcome": job.outcome.value},
    )
    return JSONResponse(success(tasks.created(task, job)))


def _new_job(state: SimState, task: tasks.Task, params: validation.CreateParams) -> jobs.Job:
    config = state.config
    # The rendered clip derives from the prompt; image2video may have none.
    seed_text = params.prompt or params.image or params.image_tail or task.task_id
    outcome = faults.draw_outcome(params.prompt, config, state.rng)
    if ERROR_TRIGGER in params.prompt:
        outcome = jobs.Outcome.FAIL
    if outcome is jobs.Outcome.FAIL:
        state.stats.count_fault(faults.Fault.JOB_FAIL)
    elif outcome is jobs.Outcome.STUCK:
        state.stats.count_fault(faults.Fault.JOB_STUCK)
    content = faults.FAIL_TRIGGER in params.prompt
    job = jobs.Job(
        id=task.task_id,
        model=params.model_name,
        prompt=seed_text,
        size=validation.SIZES[params.aspect_ratio],
        seconds=params.duration,
        created_at=state.clock(),
        duration=config.job_seconds,
        expires_after=config.expires_after_seconds,
        outcome=outcome,
        error=None
        if outcome is not jobs.Outcome.FAIL
        else jobs.JobError(
            code="content" if content else "generation",
            message=CONTENT_FAILURE if content else GENERATION_FAILURE,
        ),
    )
    state.jobs.add(job)
    state.stats.jobs_created += 1
    return job


def _query(family: str, task_id: str, request: Request, state: SimState) -> Response:
    task = index_of(state).find(family, task_id)
    job = state.jobs.get(task.task_id) if task is not None else None
    if task is None or job is None:
        raise KlingError(404, 1203, f"task {task_id} does not exist")
    data = tasks.task_data(task, job, state.clock(), str(request.base_url))
    return JSONResponse(success(data))


def _list(
    family: str, request: Request, state: SimState, page: str | None, size: str | None
) -> Response:
    number = validation.page_param(page, "pageNum", 1, 1000)
    per_page = validation.page_param(size, "pageSize", 30, 500)
    now, origin = state.clock(), str(request.base_url)
    newest_first = list(reversed(index_of(state).of_family(family)))
    chosen = newest_first[(number - 1) * per_page : number * per_page]
    data = [
        tasks.task_data(task, job, now, origin)
        for task in chosen
        if (job := state.jobs.get(task.task_id)) is not None
    ]
    return JSONResponse(success(data))
