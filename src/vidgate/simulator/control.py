"""`/_sim/*`: the simulator's own control surface, never behind the API key or faults."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from vidgate.simulator import errors, validation, views
from vidgate.simulator.deps import StateDep

router = APIRouter(prefix="/_sim")


@router.get("/stats")
async def get_stats(state: StateDep) -> Response:
    return JSONResponse(state.stats_snapshot())


@router.get("/jobs/{video_id}")
async def get_job_truth(video_id: str, state: StateDep) -> Response:
    job = state.jobs.get(video_id)
    if job is None:
        raise errors.not_found(video_id)
    return JSONResponse(views.truth(job, state.clock()))


@router.post("/reset")
async def reset_stats(state: StateDep) -> Response:
    state.stats.reset()
    return JSONResponse(state.stats_snapshot())


@router.get("/faults")
async def get_faults(state: StateDep) -> Response:
    return JSONResponse(state.config.runtime_settings())


@router.post("/faults")
async def set_faults(request: Request, state: StateDep) -> Response:
    changes = await validation.read_body(request)
    try:
        config = state.update_runtime(changes)
    except ValueError as exc:
        raise errors.SimError(400, str(exc)) from None
    return JSONResponse(config.runtime_settings())
