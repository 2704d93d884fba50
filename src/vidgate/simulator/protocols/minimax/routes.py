"""MiniMax's three video calls under the prefix, and the CDN its download URLs point to.

Every API route passes the shared guard first (stats, latency, injected faults), then the
key check: a missing or wrong bearer key is `1004 login fail` under HTTP 200, as the API
answers both. Routes parse, then delegate to `rules`, `tasks` and `wire`.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from vidgate.simulator import jobs, media, ranges
from vidgate.simulator.deps import StateDep, api_guard, count_request
from vidgate.simulator.protocols.minimax import rules, tasks, wire
from vidgate.simulator.state import SimState

CALLBACK_TIMEOUT_SECONDS = 3.0  # "the server must echo the challenge within 3 seconds"
OptionalQuery = Annotated[str | None, Query()]


def check_key(request: Request, state: StateDep) -> None:
    expected = state.config.api_key
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise wire.MiniMaxError(wire.NOT_AUTHORIZED, wire.LOGIN_FAIL_MESSAGE)


api = APIRouter(dependencies=[Depends(api_guard), Depends(check_key)])
cdn = APIRouter(dependencies=[Depends(count_request)])


@api.post("/v1/video_generation")
async def create_task(request: Request, state: StateDep) -> Response:
    spec = rules.parse_create(await _json_object(request))
    if spec.callback_url is not None:
        await _verify_callback(spec.callback_url)
    job = tasks.create(state, spec)
    return JSONResponse(wire.created(job.id))


@api.get("/v1/query/video_generation")
async def query_task(state: StateDep, task_id: OptionalQuery = None) -> Response:
    if not task_id:
        raise rules.invalid("task_id is required")
    mine = tasks.of(state)
    job = state.jobs.get(task_id)
    if job is None:
        raise rules.invalid(f"task_id {task_id} does not exist")
    return JSONResponse(
        wire.task(job, state.clock(), file_id=mine.file_of[job.id], frame=mine.frames[job.id])
    )


@api.get("/v1/files/retrieve")
async def retrieve_file(
    request: Request, state: StateDep, file_id: OptionalQuery = None
) -> Response:
    if not file_id or not file_id.isdigit():
        raise rules.invalid("file_id must be an integer")
    job = _finished_job(state, file_id)
    if job is None:
        raise rules.invalid(f"file_id {file_id} does not exist")
    now = state.clock()
    # The URL lives from the moment it is handed out (MiniMax: "valid for 9 hours from
    # the URL's return"), so every retrieve signs a fresh one.
    expires = math.ceil(now + state.config.expires_after_seconds)  # never less than promised
    signature = wire.signature(tasks.of(state).secret, file_id, expires)
    origin = str(request.base_url).rstrip("/")
    url = (
        f"{origin}{wire.CDN_PATH}/{file_id}/{wire.FILENAME}?Expires={expires}&Signature={signature}"
    )
    finished_at = jobs.finishes_at(job) or now
    return JSONResponse(wire.file(file_id=file_id, created_at=finished_at, download_url=url))


@cdn.get(wire.CDN_PATH + "/{file_id}/{filename}")
async def download(
    file_id: str,
    filename: str,
    request: Request,
    state: StateDep,
    expires: Annotated[str | None, Query(alias="Expires")] = None,
    signature: Annotated[str | None, Query(alias="Signature")] = None,
) -> Response:
    """The object behind a download URL: no API key, no injected faults, a signed expiry."""
    if not expires or not expires.isdigit() or not signature:
        return _storage_error(403, "AccessDenied", "Anonymous access is forbidden.")
    expected = wire.signature(tasks.of(state).secret, file_id, int(expires))
    if not secrets.compare_digest(expected, signature):
        return _storage_error(
            403, "SignatureDoesNotMatch", "The request signature we calculated does not match."
        )
    if state.clock() >= int(expires):
        return _storage_error(403, "AccessDenied", "Request has expired.")
    job = _finished_job(state, file_id)
    if job is None or filename != wire.FILENAME:
        return _storage_error(404, "NoSuchKey", "The specified key does not exist.")
    rendered = await state.media.get(media.MediaSpec(prompt=job.prompt, size=job.size))
    return ranges.bytes_response(
        rendered.video, media.CONTENT_TYPES["video"], request.headers.get("range")
    )


def _finished_job(state: SimState, file_id: str) -> jobs.Job | None:
    """The task behind a file, if it succeeded and its file has not been deleted yet."""
    task_id = tasks.of(state).task_of.get(file_id)
    job = state.jobs.get(task_id) if task_id is not None else None
    if job is None:
        return None
    now = state.clock()
    phase = jobs.phase(job, now)
    if phase.status != "completed" or (phase.expires_at is not None and now >= phase.expires_at):
        return None
    return job


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise rules.invalid("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise rules.invalid("the request body must be a JSON object")
    return body


async def _verify_callback(url: str) -> None:
    """MiniMax's check of a callback URL: POST a challenge, expect it echoed back."""
    challenge = secrets.token_hex(16)
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_SECONDS) as client:
            answer = await client.post(url, json={"challenge": challenge})
        echoed = answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        echoed = None
    in_time = time.monotonic() - started <= CALLBACK_TIMEOUT_SECONDS
    if not (in_time and isinstance(echoed, dict) and echoed.get("challenge") == challenge):
        raise rules.invalid("fail to check callback url")


def _storage_error(status: int, code: str, message: str) -> Response:
    return Response(
        wire.storage_error(code, message), status_code=status, media_type="application/xml"
    )
