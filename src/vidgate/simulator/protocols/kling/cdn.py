"""The result files a succeeded task's ``url`` points to, standing for Kling's CDN.

No credentials and no injected faults (the URL is public, as Kling's are). The file is
"cleaned up" ``expires_after_seconds`` after the task finished (Kling: 30 days), after which
the CDN answers 404. Range requests are honoured, as browsers need.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response

from vidgate.simulator import downloads, jobs
from vidgate.simulator.deps import StateDep, count_request
from vidgate.simulator.protocols.kling import routes

router = APIRouter(dependencies=[Depends(count_request)])


@router.get("/bs2/upload-kling-api/{task_id}/video/{file_name}")
async def result_file(task_id: str, file_name: str, request: Request, state: StateDep) -> Response:
    task = routes.index_of(state).tasks.get(task_id)
    job = state.jobs.get(task_id)
    if task is None or job is None or file_name != f"{task.video_id}.mp4":
        return _not_found()
    now = state.clock()
    phase = jobs.phase(job, now)
    if phase.status != "completed" or (phase.expires_at is not None and now >= phase.expires_at):
        return _not_found()
    return await downloads.media_response(state, job, "video", request.headers.get("range"))


def _not_found() -> Response:
    # Object storage answers a missing (or cleaned-up) file with a bare 404.
    return PlainTextResponse("Not Found", status_code=404)
