"""The reseller-style public MP4 path that a completed job's `url` field points to.

No API key and no injected faults: it stands for a CDN link a browser plays directly.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from vidgate.simulator import downloads, errors, views
from vidgate.simulator.deps import StateDep, count_request

router = APIRouter(dependencies=[Depends(count_request)])


@router.get(views.public_video_path("{video_id}"))
async def public_video(video_id: str, request: Request, state: StateDep) -> Response:
    job = state.jobs.get(video_id)
    if job is None:
        raise errors.not_found(video_id)
    return await downloads.media_response(state, job, "video", request.headers.get("range"))
