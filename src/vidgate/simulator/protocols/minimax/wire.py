"""MiniMax's answers, shaped like the examples of its API reference.

Every answer carries `base_resp {status_code, status_msg}`; `status_code` 0 is success and
anything else an error, almost always under HTTP 200. Status words, ids as strings in the
task answers and as an integer in the file answer, and the field sets follow the documented
examples (`video-generation-query`, `video-generation-download`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from vidgate.simulator import errors, jobs

SUCCESS = 0
UNKNOWN_ERROR = 1000
RATE_LIMIT = 1002
NOT_AUTHORIZED = 1004
INSUFFICIENT_BALANCE = 1008
INTERNAL_ERROR = 1024
INPUT_SENSITIVE = 1026
OUTPUT_SENSITIVE = 1027
INVALID_PARAMS = 2013

# The wording the API uses (the error-code page; the login message is what the API says
# with no key or a wrong one).
LOGIN_FAIL_MESSAGE = (
    "login fail: Please carry the API secret key in the 'Authorization' field of the request header"
)
RATE_LIMIT_MESSAGE = "rate limit exceeded(RPM)"
INTERNAL_ERROR_MESSAGE = "internal error"
UNKNOWN_ERROR_MESSAGE = "unknown error"
INPUT_SENSITIVE_MESSAGE = "input new_sensitive"
OUTPUT_SENSITIVE_MESSAGE = "output new_sensitive"
INSUFFICIENT_BALANCE_MESSAGE = "insufficient balance"

# Status words of `GET /v1/query/video_generation`, by the simulator's phase.
PREPARING, QUEUEING, PROCESSING, SUCCESS_WORD, FAIL_WORD = (
    "Preparing",
    "Queueing",
    "Processing",
    "Success",
    "Fail",
)
FILENAME = "output_aigc.mp4"
CDN_PATH = "/minimax-cdn"


class MiniMaxError(errors.SimError):
    """An error in MiniMax's envelope: `base_resp` with a non-zero code, HTTP 200 unless
    the fault is one a gateway would answer (500, 503)."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(http_status, message, headers=headers)
        self.status_code = code


def base_resp(code: int = SUCCESS, message: str = "success") -> dict[str, Any]:
    return {"status_code": code, "status_msg": message}


def created(task_id: str) -> dict[str, Any]:
    return {"task_id": task_id, "base_resp": base_resp()}


def task_word(job: jobs.Job, now: float) -> str:
    """The job's status in MiniMax's words: the queued tenth of its life is Preparing,
    then Queueing; running is Processing."""
    phase = jobs.phase(job, now)
    if phase.status == "completed":
        return SUCCESS_WORD
    if phase.status == "failed":
        return FAIL_WORD
    if phase.status == "queued":
        preparing_for = job.duration * jobs.QUEUED_FRACTION / 2
        return PREPARING if now - job.created_at < preparing_for else QUEUEING
    return PROCESSING


def task(job: jobs.Job, now: float, *, file_id: str, frame: tuple[int, int]) -> dict[str, Any]:
    """The query answer: `file_id` and the frame size once it succeeded, empty before;
    a failed task's reason in its `base_resp`."""
    word = task_word(job, now)
    done = word == SUCCESS_WORD
    answer: dict[str, Any] = {
        "task_id": job.id,
        "status": word,
        "file_id": file_id if done else "",
        "video_width": frame[0] if done else 0,
        "video_height": frame[1] if done else 0,
        "base_resp": base_resp(),
    }
    if word == FAIL_WORD and job.error is not None:
        answer["base_resp"] = base_resp(int(job.error.code), job.error.message)
    return answer


def file(*, file_id: str, created_at: float, download_url: str) -> dict[str, Any]:
    return {
        "file": {
            "file_id": int(file_id),
            # The documented example (and live answers) report 0 bytes for video output.
            "bytes": 0,
            "created_at": int(created_at),
            "filename": FILENAME,
            "purpose": "video_generation",
            "download_url": download_url,
        },
        "base_resp": base_resp(),
    }


def signature(secret: bytes, file_id: str, expires: int) -> str:
    return hmac.new(secret, f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def storage_error(code: str, message: str) -> str:
    """An object-storage refusal, in the XML the CDN behind the download URL answers with."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error>\n  <Code>{code}</Code>\n  <Message>{message}</Message>\n</Error>\n"
    )
