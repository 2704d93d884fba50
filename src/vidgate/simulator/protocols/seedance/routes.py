"""Ark's content generation task API, mounted under the configured prefix (``/api/v3``)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from vidgate.simulator.deps import StateDep, api_guard
from vidgate.simulator.protocols.seedance import envelope, storage, tasks, validation
from vidgate.simulator.state import SimState

TASKS = "/contents/generations/tasks"


def check_api_key(request: Request, state: StateDep) -> None:
    """Ark wants ``Authorization: Bearer <API key>``; anything else is a 401."""
    expected = state.config.api_key
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise envelope.unauthorized()


# The guard first (count, latency, injected faults), then the key, as the real API does.
router = APIRouter(dependencies=[Depends(api_guard), Depends(check_api_key)])


def _task_object(state: SimState, request: Request, task: tasks.Task) -> dict[str, object]:
    origin = f"{request.url.scheme}://{request.url.netloc}"
    key = tasks.registry(state).signing_key

    def file_url(task: tasks.Task, variant: str, signed_at: float) -> str:
        return storage.signed_url(origin, key, task, variant, signed_at)

    return tasks.task_object(task, state.clock(), file_url=file_url)


@router.post(TASKS)
async def create_task(request: Request, state: StateDep) -> Response:
    params = validation.create_params(await validation.read_body(request))
    task = tasks.create(state, params)
    return JSONResponse({"id": task.job.id})


@router.get(TASKS)
async def list_tasks(request: Request, state: StateDep) -> Response:
    total, page = tasks.listing(state, validation.list_params(request.query_params))
    items = [_task_object(state, request, task) for task in page]
    return JSONResponse({"total": total, "items": items})


@router.get(TASKS + "/{task_id}")
async def get_task(task_id: str, request: Request, state: StateDep) -> Response:
    return JSONResponse(_task_object(state, request, tasks.find(state, task_id)))


@router.delete(TASKS + "/{task_id}")
async def delete_task(task_id: str, state: StateDep) -> Response:
    tasks.delete(state, task_id)
    return JSONResponse({})
