"""Answering for a job's media, shared by the API's content route and the public `url` path."""

from __future__ import annotations

from fastapi.responses import Response

from vidgate.simulator import errors, jobs, media, ranges
from vidgate.simulator.state import SimState


async def media_response(
    state: SimState, job: jobs.Job, variant: str, range_header: str | None
) -> Response:
    now = state.clock()
    phase = jobs.phase(job, now)
    if phase.status != "completed":
        raise errors.SimError(
            404,
            f"Video '{job.id}' has no content: its status is '{phase.status}'.",
            param="video_id",
        )
    if phase.expires_at is not None and now >= phase.expires_at:
        raise errors.SimError(
            404, f"The content of video '{job.id}' has expired.", param="video_id"
        )
    rendered = await state.media.get(media.MediaSpec(prompt=job.prompt, size=job.size))
    return ranges.bytes_response(
        rendered.variant(variant), media.CONTENT_TYPES[variant], range_header
    )
