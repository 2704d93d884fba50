"""JSON shapes of the API's answers, exactly as the OpenAPI spec lists them.

Every key of the video object is always present; nullable ones are an explicit null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vidgate.simulator import jobs

# Polling advice for the official SDK's poll helper (`openai-poll-after-ms`): about ten polls
# per job, never faster than 50 ms nor slower than the SDK's own 1 s default.
MIN_POLL_MS = 50
MAX_POLL_MS = 1000


def public_video_path(video_id: str) -> str:
    """Where the reseller-style `url` field points: always `/videos/{id}.mp4` at the origin,
    whatever the API prefix, as the seed's upstream does (its API lives at /sora/v1)."""
    return f"/videos/{video_id}.mp4"


def video(job: jobs.Job, now: float, *, url_field: bool) -> dict[str, Any]:
    phase = jobs.phase(job, now)
    body: dict[str, Any] = {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": phase.status,
        "progress": phase.progress,
        "created_at": int(job.created_at),
        "completed_at": None if phase.finished_at is None else int(phase.finished_at),
        "expires_at": None if phase.expires_at is None else int(phase.expires_at),
        "prompt": job.prompt,
        "size": job.size,
        "seconds": job.seconds,
        "remixed_from_video_id": job.remixed_from_video_id,
        "error": None,
    }
    if phase.status == "failed" and job.error is not None:
        body["error"] = {"code": job.error.code, "message": job.error.message}
    if url_field and phase.status == "completed":
        body["url"] = public_video_path(job.id)
    return body


def truth(job: jobs.Job, now: float) -> dict[str, Any]:
    """The simulator's own view of a job for `/_sim/jobs/{id}`: exact float times and the
    outcome drawn at creation, which the API's whole-second timestamps cannot tell."""
    phase = jobs.phase(job, now)
    return {
        "id": job.id,
        "outcome": job.outcome.value,
        "status": phase.status,
        "progress": phase.progress,
        "createdAt": job.created_at,
        "finishesAt": jobs.finishes_at(job),
    }


def poll_after_ms(job: jobs.Job) -> int:
    return max(MIN_POLL_MS, min(MAX_POLL_MS, int(job.duration * 1000 / 10)))


def video_list(
    page: Sequence[jobs.Job], now: float, *, has_more: bool, url_field: bool
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [video(job, now, url_field=url_field) for job in page],
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
        "has_more": has_more,
    }


def deleted(video_id: str) -> dict[str, Any]:
    return {"id": video_id, "object": "video.deleted", "deleted": True}
