"""Adapter for MiniMax Hailuo's video API v1 (``kind = "minimax"``, base URL
``https://api.minimax.io``, or ``https://api.minimaxi.com`` in mainland China).

Three calls make one result: ``POST /v1/video_generation`` answers a ``task_id``;
``GET /v1/query/video_generation?task_id=`` says Preparing, Queueing, Processing, Success
(with a ``file_id``) or Fail, and never a progress figure; ``GET /v1/files/retrieve?file_id=``
turns the file into a ``download_url`` that lives 9 hours. ``get`` makes the third call
itself once a task succeeds, so the job view carries a playable URL; ``open_content`` asks
for a fresh one when the one it was given has expired.

MiniMax reports errors in ``base_resp.status_code``, nearly always under HTTP 200, so every
answer is read for its code before its content. MiniMax has no idempotency key, no job
list, no cancel, and a callback that needs a challenge echo vidgate does not answer: none
of them is declared.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import httpx

from vidgate.config import ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageRole, VideoParams
from vidgate.providers.base import (
    ContentStream,
    ErrorCategory,
    Features,
    JobError,
    JobRef,
    JobStatus,
    JobView,
    RateLimited,
    ResultVideo,
    SubmitRequest,
    UpstreamJobSummary,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
    Usage,
)
from vidgate.providers.http import (
    Answer,
    HttpUpstream,
    parse_retry_after,
    raise_for_status,
    resolve_url,
)

logger = logging.getLogger(__name__)

CREATE_PATH = "/v1/video_generation"
QUERY_PATH = "/v1/query/video_generation"
RETRIEVE_PATH = "/v1/files/retrieve"
# An older copy of the docs says download URLs live 9 hours; the current OpenAPI files say
# one hour. Without the URL's own signed `Expires`, assume the shorter.
RESULT_LIFETIME_SECONDS = 3600.0
MAX_MESSAGE_CHARS = 500

_FIRST, _LAST, _REFERENCE = ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME, ImageRole.REFERENCE


def _caps(
    durations: tuple[float, ...],
    resolutions: tuple[str, ...],
    roles: tuple[ImageRole, ...],
    *,
    text_only_ratio: bool = False,
) -> Capabilities:
    # Text-to-video renders at 16:9; with an image the frame follows the image, so only a
    # text-only model can promise a ratio.
    return Capabilities(
        durations=durations,
        aspect_ratios=("16:9",) if text_only_ratio else None,
        resolutions=resolutions,
        image_roles=roles,
        max_images=len(roles),
        audio=False,  # v1 renders silent videos
        negative_prompt=False,
        seed=False,
    )


_HAILUO_DURATIONS = (6.0, 10.0)
_01_SERIES = ((6.0,), ("720p",))

# The documented models of v1 (API reference: text-to-video, image-to-video, first-and-last
# frame, subject reference): 10 s only at 768P, 512P only from a first frame (Hailuo-02).
MODEL_CAPABILITIES: dict[str, Capabilities] = {
    "MiniMax-Hailuo-2.3": _caps(_HAILUO_DURATIONS, ("768p", "1080p"), (_FIRST,)),
    "MiniMax-Hailuo-2.3-Fast": _caps(_HAILUO_DURATIONS, ("768p", "1080p"), (_FIRST,)),
    "MiniMax-Hailuo-02": _caps(_HAILUO_DURATIONS, ("512p", "768p", "1080p"), (_FIRST, _LAST)),
    "T2V-01-Director": _caps(*_01_SERIES, (), text_only_ratio=True),
    "T2V-01": _caps(*_01_SERIES, (), text_only_ratio=True),
    "I2V-01-Director": _caps(*_01_SERIES, (_FIRST,)),
    "I2V-01-live": _caps(*_01_SERIES, (_FIRST,)),
    "I2V-01": _caps(*_01_SERIES, (_FIRST,)),
    "S2V-01": _caps(*_01_SERIES, (_REFERENCE,)),
}
# A model the table does not know: whatever the wire can carry.
_ANY_MODEL = Capabilities(
    image_roles=(_FIRST, _LAST, _REFERENCE), audio=False, negative_prompt=False, seed=False
)
# S2V-01's body has no duration or resolution: its only values are sent as nothing.
_NO_DURATION_FIELDS = frozenset({"S2V-01"})

DEFAULT_MODELS: dict[str, str] = {
    **{model: model for model in MODEL_CAPABILITIES},
    "hailuo-2.3": "MiniMax-Hailuo-2.3",
    "hailuo-2.3-fast": "MiniMax-Hailuo-2.3-Fast",
    "hailuo-02": "MiniMax-Hailuo-02",
}

# `params.extra` keys MiniMax documents beyond the neutral fields, and their JSON types.
EXTRA_FIELDS: dict[str, type] = {
    "prompt_optimizer": bool,
    "fast_pretreatment": bool,
    "aigc_watermark": bool,
}

_STATUSES = {
    "Preparing": JobStatus.QUEUED,
    "Queueing": JobStatus.QUEUED,
    "Processing": JobStatus.IN_PROGRESS,
    "Success": JobStatus.COMPLETED,
    "Fail": JobStatus.FAILED,
}

# base_resp.status_code, from the error-code page and the video pages.
_RATE_CODES = frozenset({1002, 1039, 2045})  # RPM, TPM, rate growth
_CONCURRENCY_CODES = frozenset({1041})  # "conn limit"
_AUTH_CODES = frozenset({1004, 2049})
_CREDIT_CODES = frozenset({1008, 1028, 1030, 2056})  # balance, Token Plan quota, usage limit
_POLICY_CODES = frozenset({1026, 1027})  # input / output sensitive
_INVALID_CODES = frozenset({2013, 1042})
_TIMEOUT_CODE = 1001
# Refusals: the codes, the HTTP status they stand for, and their category.
_REFUSALS = (
    (_AUTH_CODES, 401, ErrorCategory.PROVIDER_UNAVAILABLE),
    (_CREDIT_CODES, 402, ErrorCategory.INSUFFICIENT_CREDITS),
    (_POLICY_CODES, 400, ErrorCategory.CONTENT_POLICY),
    (_INVALID_CODES, 400, ErrorCategory.INVALID_REQUEST),
)
_BEARER = re.compile(r"(?i)bearer\s+\S+")


@dataclass(frozen=True, kw_only=True)
class _Reply:
    """An answer's JSON object and its ``base_resp``."""

    data: dict[str, Any]
    code: int
    message: str
    headers: httpx.Headers


class MiniMaxProvider:
    """A ``Provider`` for one configured MiniMax account (video API v1)."""

    kind = "minimax"
    features = Features(content_route=True)
    result_lifetime: float | None = RESULT_LIFETIME_SECONDS

    def __init__(self, config: ProviderConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.name = config.name
        self.base_url = config.base_url
        self.credential = config.credential_name()
        self.content_mode: str = config.content
        self.models = dict(config.models) or dict(DEFAULT_MODELS)
        self.max_concurrency = config.max_concurrency
        self._secret = config.secret()
        # Sent per call, never as a client default: download URLs live on a CDN that must
        # not see the key.
        self._auth = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        self._http = HttpUpstream(
            config.name,
            config.base_url,
            timeout=config.timeout_seconds,
            max_concurrency=config.max_concurrency,
            client=client,
        )

    def upstream_model(self, model: str) -> str | None:
        return self.models.get(model)

    def capabilities(self, upstream_model: str) -> Capabilities:
        return MODEL_CAPABILITIES.get(upstream_model, _ANY_MODEL)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- calls ---------------------------------------------------------------------------

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> JobView:
        # MiniMax has no idempotency key nor a client-chosen id: ``idempotency_key`` has
        # nowhere to go, and ``features`` says so.
        body = self._body(request)
        answer = await self._http.call("POST", CREATE_PATH, json=body, headers=self._auth)
        reply = self._reply(answer, "create", creating=True)
        if reply.code != 0:
            self._raise_for_code(reply, creating=True)
        task_id = _identifier(reply.data.get("task_id"))
        if task_id is None:
            raise UpstreamProtocolError(f"{self.name}: create answered without a usable task_id")
        return JobView(external_id=task_id, status=JobStatus.QUEUED)

    async def get(self, job: JobRef) -> JobView:
        params = {"task_id": job.external_id}
        answer = await self._http.call("GET", QUERY_PATH, params=params, headers=self._auth)
        reply = self._reply(answer, "query")
        data, task_id = reply.data, job.external_id
        answered_id = data.get("task_id")
        if answered_id not in (None, "") and _identifier(answered_id) != task_id:
            raise UpstreamProtocolError(f"{self.name}: query answered for another task")
        word = data.get("status")
        if word == "Fail":
            return _failed(task_id, word, self._job_error(reply))
        if reply.code != 0:
            if reply.code in _POLICY_CODES:  # a verdict may come without a status word
                return _failed(task_id, None, self._job_error(reply))
            if reply.code in _INVALID_CODES:
                raise UpstreamNotFound(
                    f"{self.name}: MiniMax does not know task {task_id}: {self._text(reply)}",
                    status=404,
                )
            self._raise_for_code(reply)
        if not isinstance(word, str):
            raise UpstreamProtocolError(f"{self.name}: query answered without a status")
        status = _STATUSES.get(word)
        if status is JobStatus.COMPLETED:
            return await self._completed(task_id, word, data)
        return JobView(external_id=task_id, status=status, raw_status=word)

    async def cancel(self, job: JobRef) -> None:
        raise NotImplementedError("MiniMax video API v1 cannot cancel a task")

    async def open_content(
        self, job: JobRef, *, url: str | None = None, range_header: str | None = None
    ) -> ContentStream:
        """Stream the video from its download URL (no key: it is a signed CDN link). An
        expired or missing URL is replaced by a fresh one from ``files/retrieve``."""
        if url is None:
            return await self._http.stream(await self._fresh_url(job), range_header=range_header)
        try:
            return await self._http.stream(url, range_header=range_header)
        except UpstreamRejected as exc:
            if exc.status != 403:  # the CDN's answer to an expired signature
                raise
        return await self._http.stream(await self._fresh_url(job), range_header=range_header)

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        raise NotImplementedError("MiniMax video API v1 has no list of tasks")

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        raise NotImplementedError("MiniMax video API v1 has no client-chosen task ids")

    # -- the result ----------------------------------------------------------------------

    async def _completed(self, task_id: str, word: str, data: Mapping[str, Any]) -> JobView:
        usage = _usage(data)
        file_id = _identifier(data.get("file_id"))
        if file_id is None or not file_id.isdigit():
            # "Success" without a file is not a success: there is nothing to play.
            error = JobError(
                code="no_file",
                message="MiniMax reported the task successful but named no video file.",
                category=ErrorCategory.GENERATION_FAILED,
            )
            return _failed(task_id, word, error, usage)
        result = await self._retrieve(file_id)
        if isinstance(result, JobError):
            return _failed(task_id, word, result, usage)
        return JobView(
            external_id=task_id,
            status=JobStatus.COMPLETED,
            raw_status=word,
            videos=(result,),
            usage=usage,
        )

    async def _retrieve(self, file_id: str) -> ResultVideo | JobError:
        """The file's download URL, or why it is gone (MiniMax deletes it after 9 hours)."""
        params = {"file_id": file_id}
        answer = await self._http.call("GET", RETRIEVE_PATH, params=params, headers=self._auth)
        reply = self._reply(answer, "files/retrieve")
        if reply.code in _INVALID_CODES:
            return JobError(
                code=str(reply.code),
                message=f"MiniMax no longer has the video file: {self._text(reply)}",
                category=ErrorCategory.GENERATION_FAILED,
            )
        if reply.code != 0:
            self._raise_for_code(reply)
        file = reply.data.get("file")
        raw_url = file.get("download_url") if isinstance(file, dict) else None
        url = resolve_url(self.base_url, raw_url) if isinstance(raw_url, str) else None
        if url is None:
            raise UpstreamProtocolError(f"{self.name}: files/retrieve answered without a URL")
        return ResultVideo(url=url, expires_at=_expiry(url))

    async def _fresh_url(self, job: JobRef) -> str:
        view = await self.get(job)
        if view.videos and view.videos[0].url is not None:
            return view.videos[0].url
        raise UpstreamNotFound(
            f"{self.name}: task {job.external_id} has no video ({view.raw_status or 'no status'})",
            status=404,
        )

    # -- the request ---------------------------------------------------------------------

    def _body(self, request: SubmitRequest) -> dict[str, Any]:
        """The wire body; anything the wire cannot carry is refused before any call."""
        params = request.params
        body: dict[str, Any] = {"model": request.model}
        if request.prompt:
            body["prompt"] = request.prompt
        images = self._images(params)
        if _FIRST in images:
            body["first_frame_image"] = images[_FIRST]
        if _LAST in images:
            body["last_frame_image"] = images[_LAST]
        if _REFERENCE in images:
            body["subject_reference"] = [{"type": "character", "image": [images[_REFERENCE]]}]
        # There is no ratio field: text-only output is 16:9 and, with an image, the frame
        # follows the image; a ratio is refused only when nothing could honour it.
        if params.aspect_ratio not in (None, "16:9") and not images:
            self._refuse(
                "aspectRatio", "MiniMax renders text-only requests at 16:9; give an image instead"
            )
        if params.negative_prompt:
            self._refuse("negativePrompt", "MiniMax video API v1 has no negative prompt")
        if params.seed is not None:
            self._refuse("seed", "MiniMax video API v1 takes no seed")
        if params.audio:
            self._refuse("audio", "MiniMax video API v1 makes silent videos")
        sends_duration = request.model not in _NO_DURATION_FIELDS
        if params.duration_seconds is not None and sends_duration:
            body["duration"] = self._duration(params.duration_seconds)
        if params.resolution is not None and sends_duration:
            body["resolution"] = self._resolution(params.resolution)
        body.update(self._extra(params.extra))
        return body

    def _images(self, params: VideoParams) -> dict[ImageRole, str]:
        images: dict[ImageRole, str] = {}
        for image in params.images:
            if image.role in images:
                self._refuse("images", f"MiniMax takes one {image.role} image")
            images[image.role] = image.url
        return images

    def _duration(self, seconds: float) -> int:
        if not math.isfinite(seconds) or seconds <= 0 or not float(seconds).is_integer():
            self._refuse("durationSeconds", "MiniMax takes whole seconds")
        return int(seconds)

    def _resolution(self, resolution: str) -> str:
        # The neutral "768p" is MiniMax's "768P".
        if re.fullmatch(r"\d{3,4}p", resolution) is None:
            self._refuse("resolution", f"{resolution!r} is not a MiniMax resolution")
        return resolution.upper()

    def _extra(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        for key, value in extra.items():
            expected = EXTRA_FIELDS.get(key)
            if expected is None:
                self._refuse(
                    f"extra.{key}", f"unknown; MiniMax takes {', '.join(sorted(EXTRA_FIELDS))}"
                )
            if type(value) is not expected:
                self._refuse(f"extra.{key}", f"must be a JSON {expected.__name__}")
        return dict(extra)

    def _refuse(self, field: str, reason: str) -> NoReturn:
        raise UpstreamRejected(
            f"{self.name}: {field}: {reason}.",
            status=400,
            code="invalid_request",
            category=ErrorCategory.INVALID_REQUEST,
        )

    # -- answers -------------------------------------------------------------------------

    def _reply(self, answer: Answer, what: str, *, creating: bool = False) -> _Reply:
        """The answer's object and ``base_resp``; an HTTP error status is raised first."""
        code, message = _base_resp(answer.body)
        if answer.status >= 400:
            if code and answer.status < 500 and answer.status != 429:
                # A 4xx that names a MiniMax code (a proxy, or the v2-style gateway):
                # the code says more than the status.
                reply = _Reply(data={}, code=code, message=message, headers=answer.headers)
                self._raise_for_code(reply, creating=creating)
            raise_for_status(
                self.name, answer, message=self._scrub(message) or None, code=_text_code(code)
            )
        data = answer.object(self.name, what)
        if code is None:
            raise UpstreamProtocolError(f"{self.name}: {what} answered without a base_resp")
        return _Reply(data=data, code=code, message=message, headers=answer.headers)

    def _raise_for_code(self, reply: _Reply, *, creating: bool = False) -> NoReturn:
        code, text = reply.code, self._text(reply)
        if code in _RATE_CODES or code in _CONCURRENCY_CODES:
            raise RateLimited(
                text,
                retry_after=parse_retry_after(reply.headers),
                concurrency=code in _CONCURRENCY_CODES,
            )
        for codes, status, category in _REFUSALS:
            if code in codes:
                raise UpstreamRejected(text, status=status, code=str(code), category=category)
        # 1000 unknown, 1001 timeout, 1024 internal, 1033 system error, or a code we do
        # not know: transient. Only a timeout leaves a create's fate open; an explicit
        # error answer created nothing.
        raise UpstreamUnavailable(
            text, status=503, maybe_received=not creating or code == _TIMEOUT_CODE
        )

    def _job_error(self, reply: _Reply) -> JobError:
        code = reply.code
        category = next(
            (category for codes, _, category in _REFUSALS if code in codes),
            ErrorCategory.GENERATION_FAILED,  # 1024 internal error, or no code at all
        )
        message = self._scrub(reply.message) if code != 0 else ""
        return JobError(
            code=str(code) if code != 0 else "Fail",
            message=message or "MiniMax reported the video generation as failed.",
            category=category,
        )

    def _text(self, reply: _Reply) -> str:
        return f"{self.name}: MiniMax {reply.code}: {self._scrub(reply.message) or 'no message'}"

    def _scrub(self, message: str) -> str:
        """An upstream message without the key (some gateways echo the request headers)."""
        if self._secret:
            message = message.replace(self._secret, "***")
        return _BEARER.sub("Bearer ***", message)[:MAX_MESSAGE_CHARS]


def _base_resp(body: object) -> tuple[int | None, str]:
    """``(status_code, status_msg)``; ``(None, "")`` when the body has no readable one."""
    if not isinstance(body, dict) or not isinstance(body.get("base_resp"), dict):
        return None, ""
    base = body["base_resp"]
    code, message = base.get("status_code"), base.get("status_msg")
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        code = int(code)  # some gateways in front of MiniMax send it as text
    if isinstance(code, bool) or not isinstance(code, int):
        return None, ""
    return code, message.strip() if isinstance(message, str) else ""


def _identifier(value: object) -> str | None:
    """A task or file id: MiniMax sends strings of digits (the file API an integer)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 255 and value.isprintable():
        return value.strip()
    return None


def _text_code(code: int | None) -> str | None:
    return None if code in (None, 0) else str(code)


def _failed(task_id: str, word: str | None, error: JobError, usage: Usage | None = None) -> JobView:
    return JobView(
        external_id=task_id, status=JobStatus.FAILED, raw_status=word, error=error, usage=usage
    )


def _usage(data: Mapping[str, Any]) -> Usage | None:
    width, height = data.get("video_width"), data.get("video_height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return Usage(resolution=f"{width}x{height}")
    return None


def _expiry(url: str, *, now: float | None = None) -> float:
    """When a download URL stops working: its signed ``Expires`` if it has a plausible one,
    else the documented 9 hours from now."""
    now = time.time() if now is None else now
    values = parse_qs(urlsplit(url).query).get("Expires", [])
    if len(values) == 1 and values[0].isdigit():
        expires = float(values[0])
        if now < expires <= now + 7 * 86400:
            return expires
    return now + RESULT_LIFETIME_SECONDS
