"""The object storage (TOS) a finished task's ``video_url`` points to.

Ark hands out a plain pre-signed URL, valid for a limited time (24 h at BytePlus; here
``expires_after_seconds``): the query carries the signing time (``X-Tos-Date``), the
lifetime (``X-Tos-Expires``) and an HMAC signature, so no API key is needed to play it
and a tampered or outdated URL is refused with 403, as TOS refuses it. No fault
injection here: it stands for a CDN, not for the API.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import math
import secrets
import time
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from vidgate.simulator import media, ranges
from vidgate.simulator.deps import StateDep, count_request
from vidgate.simulator.protocols.seedance import tasks

BUCKET = "ark-content-generation"
ALGORITHM = "TOS4-HMAC-SHA256"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# The file name of each variant, and what the media cache calls it.
_FILES = {"video": ("{id}.mp4", "video"), "last_frame": ("{id}_last-frame.webp", "thumbnail")}

router = APIRouter(dependencies=[Depends(count_request)])


def object_path(task: tasks.Task, variant: str) -> str:
    name = _FILES[variant][0].format(id=task.job.id)
    return f"/{BUCKET}/{task.job.model}/{name}"


def signed_url(origin: str, key: bytes, task: tasks.Task, variant: str, signed_at: float) -> str:
    """The pre-signed URL of a task's file, valid from ``signed_at`` for the job's
    ``expires_after`` seconds."""
    path = object_path(task, variant)
    date = time.strftime(_DATE_FORMAT, time.gmtime(signed_at))
    expires = str(max(1, math.ceil(task.job.expires_after)))
    query = {
        "X-Tos-Algorithm": ALGORITHM,
        "X-Tos-Credential": f"AKLTsimulator/{date[:8]}/ap-southeast-1/tos/request",
        "X-Tos-Date": date,
        "X-Tos-Expires": expires,
        "X-Tos-SignedHeaders": "host",
        "X-Tos-Signature": _signature(key, path, date, expires),
    }
    return f"{origin}{path}?{urlencode(query)}"


def _signature(key: bytes, path: str, date: str, expires: str) -> str:
    return hmac.new(key, f"{path}\n{date}\n{expires}".encode(), hashlib.sha256).hexdigest()


def _refusal(status: int, code: str, message: str) -> Response:
    request_id = secrets.token_hex(12)
    return JSONResponse(
        {"Code": code, "Message": message, "RequestId": request_id, "HostId": "tos-simulator"},
        status_code=status,
        headers={"x-tos-request-id": request_id},
    )


@router.get("/" + BUCKET + "/{model}/{name}")
async def get_object(model: str, name: str, request: Request, state: StateDep) -> Response:
    query = request.query_params
    date, expires, given = (
        query.get("X-Tos-Date"),
        query.get("X-Tos-Expires"),
        query.get("X-Tos-Signature"),
    )
    if not date or not expires or not given:
        return _refusal(403, "AccessDenied", "Access Denied")
    key = tasks.registry(state).signing_key
    path = f"/{BUCKET}/{model}/{name}"
    if not hmac.compare_digest(_signature(key, path, date, expires), given):
        return _refusal(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    try:
        valid_until = calendar.timegm(time.strptime(date, _DATE_FORMAT)) + int(expires)
    except ValueError:
        return _refusal(403, "AccessDenied", "Access Denied")
    if state.clock() >= valid_until:
        return _refusal(403, "AccessDenied", "Request has expired")
    task_id, _, rest = name.partition("_")
    task_id = task_id.removesuffix(".mp4")
    job = state.jobs.get(task_id)
    variant = "last_frame" if rest else "video"
    if job is None or job.model != model or name != _FILES[variant][0].format(id=task_id):
        return _refusal(404, "NoSuchKey", "The specified key does not exist.")
    rendered = await state.media.get(media.MediaSpec(prompt=job.prompt, size=job.size))
    kind = _FILES[variant][1]
    return ranges.bytes_response(
        rendered.variant(kind), media.CONTENT_TYPES[kind], request.headers.get("range")
    )
