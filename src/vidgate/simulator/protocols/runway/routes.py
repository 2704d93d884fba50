"""Runway's task API (mounted under the configured prefix) and its artifact "CDN" (at the
origin root). Routes parse, check, then delegate to ``tasks``."""

from __future__ import annotations

import json
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response

from vidgate.simulator import jobs, media, ranges
from vidgate.simulator.deps import StateDep, api_guard, count_request
from vidgate.simulator.protocols.runway import tasks, wire
from vidgate.simulator.protocols.runway.envelope import RunwayError
from vidgate.simulator.state import SimState

# The versions the API answers; an older one is refused once its four months of support
# have run out (docs: API Versioning).
SUPPORTED_VERSIONS = ("2024-11-06",)

MISSING_KEY = "No API key provided. Send it as 'Authorization: Bearer <key>'."
BAD_KEY = "The provided API key is not valid."
NOT_FOUND = "Could not find Task"


async def check_credentials(
    state: StateDep,
    authorization: Annotated[str | None, Header()] = None,
    x_runway_version: Annotated[str | None, Header()] = None,
) -> None:
    """The key first (401), then the version header every request must carry (400)."""
    expected = state.config.api_key
    if expected is not None:
        scheme, _, given = (authorization or "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise RunwayError(401, MISSING_KEY)
        if not secrets.compare_digest(given.encode(), expected.encode()):
            raise RunwayError(401, BAD_KEY)
    if not x_runway_version:
        raise RunwayError(
            400,
            "The X-Runway-Version header is required. "
            f"Set it to a supported API version, e.g. {SUPPORTED_VERSIONS[-1]}.",
            doc_url=True,
        )
    if x_runway_version not in SUPPORTED_VERSIONS:
        raise RunwayError(
            400,
            f"Unsupported API version '{x_runway_version}' in the X-Runway-Version header. "
            f"Supported versions: {', '.join(SUPPORTED_VERSIONS)}.",
            doc_url=True,
        )


api = APIRouter(dependencies=[Depends(api_guard), Depends(check_credentials)])
artifacts = APIRouter(dependencies=[Depends(count_request)])


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _task(state: SimState, task_id: str) -> jobs.Job:
    job = state.jobs.get(task_id)
    if job is None or task_id not in tasks.runway_state(state).tasks:
        raise RunwayError(404, NOT_FOUND)
    return job


async def _create(endpoint: str, request: Request, state: SimState) -> Response:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise RunwayError(400, "The request body is not valid JSON.") from None
    task = wire.parse(endpoint, body)
    if tasks.NO_CREDITS_TRIGGER in task.prompt_text:
        raise RunwayError(400, "You do not have enough credits to run this task.", doc_url=True)
    job = tasks.create(state, task)
    return JSONResponse({"id": job.id, "estimatedCost": {"credits": task.credits}})


@api.post("/v1/image_to_video")
async def image_to_video(request: Request, state: StateDep) -> Response:
    return await _create(wire.IMAGE_TO_VIDEO, request, state)


@api.post("/v1/text_to_video")
async def text_to_video(request: Request, state: StateDep) -> Response:
    return await _create(wire.TEXT_TO_VIDEO, request, state)


@api.get("/v1/tasks/{task_id}")
async def get_task(task_id: str, request: Request, state: StateDep) -> Response:
    job = _task(state, task_id)
    return JSONResponse(tasks.view(state, job, origin=_origin(request)))


@api.delete("/v1/tasks/{task_id}")
async def delete_task(task_id: str, state: StateDep) -> Response:
    _task(state, task_id)
    tasks.delete(state, task_id)
    return Response(status_code=204)


@artifacts.get(tasks.ARTIFACT_PATH.format(task_id="{task_id}"))
async def artifact(task_id: str, request: Request, state: StateDep) -> Response:
    """A signed output URL, as a CDN answers it: no API key, no injected faults."""
    if not tasks.url_valid(state, task_id, request.query_params.get("_jwt")):
        return Response("Forbidden", status_code=403, media_type="text/plain")
    job = state.jobs.get(task_id)
    if job is None or jobs.phase(job, state.clock()).status != "completed":
        return Response("Not Found", status_code=404, media_type="text/plain")
    # Runway keeps the output past one URL's life: only the token expires (above).
    rendered = await state.media.get(media.MediaSpec(prompt=job.prompt, size=job.size))
    return ranges.bytes_response(
        rendered.video, media.CONTENT_TYPES["video"], request.headers.get("range")
    )
