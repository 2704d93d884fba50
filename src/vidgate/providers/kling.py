"""Adapter for Kling's video API (``kind = "kling"``, PROTOCOLS.md §1.4).

Kling wants a short-lived JWT on every request (HS256 over the access key, signed with the
secret key), answers in a ``{code, message, request_id, data}`` envelope and tells errors
by a service code beside the HTTP status. Codes matter more than statuses: 1302 is a rate
limit but 1303 means too many tasks running, and 1100-1102 arrive as 429 too although they
mean the account is out of units. A task has no progress figure; its result URLs are
public and cleaned up after 30 days. The attempt's key goes out as ``external_task_id``,
which the query route accepts in place of the task id: a crashed submission is found again
by asking for it (``find_by_client_id``).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import jwt

from vidgate.config import ConfigError, ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageRole
from vidgate.providers import http
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

logger = logging.getLogger(__name__)

TEXT2VIDEO = "text2video"
IMAGE2VIDEO = "image2video"
FAMILIES = (TEXT2VIDEO, IMAGE2VIDEO)
# The vendor's recipe: exp = now + 30 min, nbf = now - 5 s (clock skew).
TOKEN_LIFETIME = 1800
TOKEN_NOT_BEFORE = 5
# A token is replaced this long before it expires, so none expires in flight.
TOKEN_RENEW_BEFORE = 300
# "Generated images/videos are cleaned up after 30 days" (PROTOCOLS.md §1.4).
RESULT_LIFETIME = 30 * 86400.0

DEFAULT_MODELS = {
    "kling-v3": "kling-v3",
    "kling-v2-6": "kling-v2-6",
    "kling-v2-5-turbo": "kling-v2-5-turbo",
    "kling-v2-1-master": "kling-v2-1-master",
    "kling-v2-master": "kling-v2-master",
    "kling-v1-6": "kling-v1-6",
}

_RATIOS = ("16:9", "9:16", "1:1")
_FRAMES = (ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME)
_CLASSIC = (5.0, 10.0)
_STD_PRO = {"720p": "std", "1080p": "pro"}


@dataclass(frozen=True, kw_only=True)
class _Model:
    caps: Capabilities
    modes: Mapping[str, str]  # resolution -> `mode`; empty: the model has no mode choice
    sound_needs_pro: bool = False


def _caps(
    durations: tuple[float, ...], resolutions: tuple[str, ...], frames: int, audio: bool
) -> Capabilities:
    # Kling has no seed parameter; negative_prompt is accepted by every model listed.
    return Capabilities(
        durations=durations,
        aspect_ratios=_RATIOS,
        resolutions=resolutions,
        image_roles=_FRAMES[:frames],
        max_images=frames,
        audio=audio,
        seed=False,
    )


# The vendor's capability map: std renders 720p and pro 1080p; the master models have one
# resolution and no mode; last frames need a model with start/end-frame support; sound
# exists from v2-6 on (v2-6: pro only); kling-v3 takes any whole duration from 3 to 15 s.
MODELS = {
    "kling-v3": _Model(
        caps=_caps(tuple(float(s) for s in range(3, 16)), ("720p", "1080p"), 2, True),
        modes=_STD_PRO,
    ),
    "kling-v2-6": _Model(
        caps=_caps(_CLASSIC, ("720p", "1080p"), 2, True), modes=_STD_PRO, sound_needs_pro=True
    ),
    "kling-v2-5-turbo": _Model(caps=_caps(_CLASSIC, ("720p", "1080p"), 2, False), modes=_STD_PRO),
    "kling-v2-1-master": _Model(caps=_caps(_CLASSIC, ("1080p",), 1, False), modes={}),
    "kling-v2-master": _Model(caps=_caps(_CLASSIC, ("720p",), 1, False), modes={}),
    "kling-v1-6": _Model(caps=_caps(_CLASSIC, ("720p", "1080p"), 2, False), modes=_STD_PRO),
}
_GENERIC = _Model(caps=_caps(_CLASSIC, ("720p", "1080p"), 2, False), modes=_STD_PRO)

_STATUSES = {
    "submitted": JobStatus.QUEUED,
    "processing": JobStatus.IN_PROGRESS,
    "succeed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
}
# A failed task carries only `task_status_msg`; these words in it mean the content check.
_POLICY_WORDS = (
    "risk control",
    "security polic",
    "content polic",
    "sensitive",
    "violat",
    "moderation",
    "inappropriate",
    "prohibited",
)
_CONTENT_CODE = "1301"  # Kling's code for "content security policy triggered"


def _unit_interval(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


# Kling-only request fields a client may pass in `params.extra`: (check, expected, families).
_EXTRAS: dict[str, tuple[Callable[[object], bool], str, tuple[str, ...]]] = {
    "mode": (lambda v: v in ("std", "pro"), '"std" or "pro"', FAMILIES),
    "cfg_scale": (_unit_interval, "a number in [0, 1]", FAMILIES),
    "camera_control": (lambda v: isinstance(v, dict), "an object", FAMILIES),
    "watermark_info": (lambda v: isinstance(v, dict), "an object", FAMILIES),
    "voice_list": (
        lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v),
        "an array of objects",
        FAMILIES,
    ),
    "multi_shot": (lambda v: isinstance(v, bool), "a boolean", FAMILIES),
    "shot_type": (lambda v: isinstance(v, str), "a string", FAMILIES),
    "multi_prompt": (lambda v: isinstance(v, list), "an array", FAMILIES),
    "static_mask": (lambda v: isinstance(v, str), "a string", (IMAGE2VIDEO,)),
    "dynamic_masks": (lambda v: isinstance(v, list), "an array", (IMAGE2VIDEO,)),
}


class _Token:
    """The bearer JWT, renewed ``TOKEN_RENEW_BEFORE`` seconds before it expires."""

    def __init__(self, access_key: str, secret_key: str, clock: Callable[[], float]) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._value: str | None = None
        self._expires = 0.0

    def current(self) -> str:
        now = self._clock()
        if self._value is None or now >= self._expires - TOKEN_RENEW_BEFORE:
            issued = int(now)
            claims = {
                "iss": self._access_key,
                "exp": issued + TOKEN_LIFETIME,
                "nbf": issued - TOKEN_NOT_BEFORE,
            }
            with warnings.catch_warnings():
                # Kling issues the secret key; its length is not ours to choose.
                warnings.filterwarnings("ignore", message="The HMAC key is", category=UserWarning)
                self._value = jwt.encode(claims, self._secret_key, algorithm="HS256")
            self._expires = float(issued + TOKEN_LIFETIME)
        return self._value


class KlingProvider:
    """A ``Provider`` for one configured Kling account."""

    kind = "kling"
    features = Features(client_id=True, callbacks=True)
    result_lifetime: float | None = RESULT_LIFETIME

    def __init__(
        self,
        config: ProviderConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        access_key, secret_key = config.secret("access_key"), config.secret("secret_key")
        if not access_key or not secret_key:
            raise ConfigError(
                f'provider {config.name!r}: kind = "kling" needs access_key and secret_key '
                "(or access_key_env / secret_key_env, or access_key_file / secret_key_file)"
            )
        self.name = config.name
        self.base_url = config.base_url.rstrip("/")
        self.credential = config.credential_name()
        self.content_mode: str = config.content
        self.models = dict(config.models or DEFAULT_MODELS)
        self.max_concurrency = config.max_concurrency
        self._clock = clock
        self._token = _Token(access_key, secret_key, clock)
        self._http = http.HttpUpstream(
            config.name,
            self.base_url,
            timeout=config.timeout_seconds,
            max_concurrency=config.max_concurrency,
            client=client,
        )

    def upstream_model(self, model: str) -> str | None:
        return self.models.get(model)

    def capabilities(self, upstream_model: str) -> Capabilities:
        return MODELS.get(upstream_model, _GENERIC).caps

    # -- calls ---------------------------------------------------------------------------

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> JobView:
        family, body = self._body(request, idempotency_key)
        answer = await self._call("POST", f"/v1/videos/{family}", json=body, creating=True)
        return self._view(self._data(answer, "create"), family)

    async def get(self, job: JobRef) -> JobView:
        # The query route is per family; a job bound before its family was known is
        # looked for in both.
        families = (job.poll_handle,) if job.poll_handle in FAMILIES else FAMILIES
        for family in families[:-1]:
            try:
                return await self._query(family, job.external_id)
            except UpstreamNotFound:
                continue
        return await self._query(families[-1], job.external_id)

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        """The task created with ``external_task_id = client_id``: the query route takes
        either id in its path ("choose one of task_id and external_task_id")."""
        for family in FAMILIES:
            try:
                data = await self._task(family, client_id)
            except UpstreamNotFound:
                continue
            info = data.get("task_info")
            echoed = info.get("external_task_id") if isinstance(info, dict) else None
            if echoed is not None and echoed != client_id:
                continue  # a task whose own id happens to equal the key: not ours
            return self._view(data, family)
        return None

    async def _query(self, family: str, task_or_client_id: str) -> JobView:
        return self._view(await self._task(family, task_or_client_id), family)

    async def _task(self, family: str, task_or_client_id: str) -> dict[str, Any]:
        path = f"/v1/videos/{family}/{quote(task_or_client_id, safe='')}"
        return self._data(await self._call("GET", path), "query")

    async def cancel(self, job: JobRef) -> None:
        raise NotImplementedError("Kling has no way to cancel a task")

    async def open_content(
        self, job: JobRef, *, url: str | None = None, range_header: str | None = None
    ) -> ContentStream:
        if url is None:
            raise NotImplementedError("Kling has no content route; use the task's video URL")
        # The URL is public (Kling's CDN): no token goes with it.
        return await self._http.stream(url, range_header=range_header)

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        raise NotImplementedError("Kling is reconciled by external_task_id, not by listing")

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the request ---------------------------------------------------------------------

    def _body(self, request: SubmitRequest, key: str) -> tuple[str, dict[str, Any]]:
        """The family (endpoint) and wire body; refuses what Kling cannot carry before
        anything is sent."""
        params = request.params
        model = MODELS.get(request.model, _GENERIC)
        firsts = [i.url for i in params.images if i.role is ImageRole.FIRST_FRAME]
        lasts = [i.url for i in params.images if i.role is ImageRole.LAST_FRAME]
        if len(firsts) + len(lasts) != len(params.images):
            self._refuse("Kling takes a first and a last frame, not reference images")
        if len(firsts) > 1 or len(lasts) > 1:
            self._refuse("Kling takes at most one first frame and one last frame")
        family = IMAGE2VIDEO if params.images else TEXT2VIDEO
        extra = self._extra(params.extra, family)
        if params.seed is not None:
            self._refuse("Kling has no seed parameter")
        body: dict[str, Any] = {"model_name": request.model}
        if request.prompt or family == TEXT2VIDEO:
            body["prompt"] = request.prompt
        if params.negative_prompt:
            body["negative_prompt"] = params.negative_prompt
        if params.duration_seconds is not None:
            seconds = params.duration_seconds
            if not math.isfinite(seconds) or not float(seconds).is_integer():
                self._refuse(f"Kling takes whole seconds, not {seconds:g}")
            body["duration"] = str(int(seconds))
        mode = self._mode(model, request.model, params.resolution, extra.pop("mode", None))
        if params.audio is not None and (model.caps.audio or params.audio):
            if not model.caps.audio:
                self._refuse(f"{request.model} cannot generate sound")
            if params.audio and model.sound_needs_pro:
                if mode == "std":
                    self._refuse(f"{request.model} generates sound only in pro mode (1080p)")
                mode = "pro"
            body["sound"] = "on" if params.audio else "off"
        if mode is not None:
            body["mode"] = mode
        # image2video has no aspect_ratio: the frame's own shape decides.
        if params.aspect_ratio is not None and family == TEXT2VIDEO:
            body["aspect_ratio"] = params.aspect_ratio
        if firsts:
            body["image"] = self._image(firsts[0])
        if lasts:
            body["image_tail"] = self._image(lasts[0])
        if request.callback_url:
            body["callback_url"] = request.callback_url
        body["external_task_id"] = key
        body.update(extra)
        return family, body

    def _mode(self, model: _Model, name: str, resolution: str | None, asked: object) -> str | None:
        mode = asked if isinstance(asked, str) else None
        if resolution is None:
            return mode
        if not model.modes:
            if resolution not in (model.caps.resolutions or ()):
                self._refuse(f"{name} renders {', '.join(model.caps.resolutions or ())} only")
            return mode
        wanted = model.modes.get(resolution)
        if wanted is None:
            self._refuse(f"{name} renders {' or '.join(model.modes)}, not {resolution}")
        if mode is not None and mode != wanted:
            self._refuse(f'extra mode "{mode}" contradicts resolution {resolution}')
        return wanted

    def _extra(self, extra: Mapping[str, Any], family: str) -> dict[str, Any]:
        checked: dict[str, Any] = {}
        for key, value in extra.items():
            rule = _EXTRAS.get(key)
            if rule is None:
                self._refuse(
                    f"unknown Kling parameter {key!r} in extra; known: {', '.join(_EXTRAS)}"
                )
            check, expected, families = rule
            if family not in families:
                self._refuse(f"{key!r} only applies to {' and '.join(families)}")
            if not check(value):
                self._refuse(f"extra {key!r} must be {expected}")
            checked[key] = value
        return checked

    def _image(self, url: str) -> str:
        """A URL as it is; a data URL as the bare Base64 Kling wants (no ``data:`` prefix)."""
        if not url.startswith("data:"):
            return url
        header, sep, payload = url.partition(",")
        if not sep or not header.endswith(";base64") or not payload:
            self._refuse("a data URL image must be Base64-encoded")
        return payload

    def _refuse(self, message: str) -> NoReturn:
        raise UpstreamRejected(
            f"{self.name}: {message}", status=400, category=ErrorCategory.INVALID_REQUEST
        )

    # -- the answer ----------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, *, json: object = None, creating: bool = False
    ) -> http.Answer:
        answer = await self._http.call(
            method, path, json=json, headers={"Authorization": f"Bearer {self._token.current()}"}
        )
        code, _ = _error_of(answer.body)
        if answer.status >= 400 or (code is not None and code != 0):
            self._raise_for(answer, creating=creating)
        return answer

    def _raise_for(self, answer: http.Answer, *, creating: bool) -> NoReturn:
        code, message = _error_of(answer.body)
        status = answer.status
        text = f"{self.name}: Kling answered {status}" + (f" (code {code})" if code else "")
        text += f": {message or answer.reason}"
        rejected_status = status if status >= 400 else 400
        if code in (1302, 1303):
            raise RateLimited(
                text,
                status=status if status >= 400 else 429,
                retry_after=http.parse_retry_after(answer.headers),
                concurrency=code == 1303,
            )
        category = _category_of(code)
        if code == 1203 and not creating:
            raise UpstreamNotFound(text, status=status)
        if category is not None:
            raise UpstreamRejected(text, status=rejected_status, code=str(code), category=category)
        if code in (5000, 5001, 5002):
            # 5002 is Kling timing out inside: the task may exist.
            raise UpstreamUnavailable(
                text, status=status, maybe_received=code == 5002 or status in (502, 504)
            )
        if status < 400:
            raise UpstreamProtocolError(f"{self.name}: Kling answered 200 with code {code}")
        http.raise_for_status(
            self.name, answer, message=message, code=str(code) if code is not None else None
        )

    def _data(self, answer: http.Answer, what: str) -> dict[str, Any]:
        body = answer.object(self.name, what)
        data = body.get("data")
        if body.get("code") != 0 or not isinstance(data, dict):
            raise UpstreamProtocolError(
                f"{self.name}: the {what} answer is not Kling's {{code, data}} envelope"
            )
        return data

    def _view(self, data: dict[str, Any], family: str) -> JobView:
        task_id = http.usable_id(self.name, data.get("task_id"), "Kling task")
        word = data.get("task_status")
        status = _STATUSES.get(word) if isinstance(word, str) else None
        if status is None:
            logger.warning("unknown Kling task status %r", word, extra={"externalVideoId": task_id})
        videos: tuple[ResultVideo, ...] = ()
        error = usage = None
        if status is JobStatus.COMPLETED:
            finished = _seconds(data.get("updated_at")) or self._clock()
            videos = self._videos(data.get("task_result"), finished)
            usage = _usage(data)
            if not videos:
                status = JobStatus.FAILED
                error = JobError(
                    code="succeed_without_video",
                    message="Kling reported success but returned no video.",
                    category=ErrorCategory.GENERATION_FAILED,
                )
        elif status is JobStatus.FAILED:
            error = _failure(data.get("task_status_msg"))
        return JobView(
            external_id=task_id,
            status=status,
            raw_status=word if isinstance(word, str) else None,
            progress=None,  # Kling reports none
            videos=videos,
            error=error,
            usage=usage,
            poll_handle=family,
            created_at=_seconds(data.get("created_at")),
        )

    def _videos(self, result: object, finished: float) -> tuple[ResultVideo, ...]:
        items = result.get("videos") if isinstance(result, dict) else None
        found = []
        for item in items if isinstance(items, list) else ():
            raw = item.get("url") if isinstance(item, dict) else None
            url = http.resolve_url(self.base_url, raw) if isinstance(raw, str) else None
            if url is not None:
                found.append(ResultVideo(url=url, expires_at=finished + RESULT_LIFETIME))
        return tuple(found)


def _error_of(body: object) -> tuple[int | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    code, message = body.get("code"), body.get("message")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) else None,
    )


def _category_of(code: int | None) -> ErrorCategory | None:
    """How a refused request is classed, by Kling's code (its "Error Code" table)."""
    if code is None:
        return None
    if 1100 <= code <= 1102:  # account exception, arrears, resource pack used up
        return ErrorCategory.INSUFFICIENT_CREDITS
    if code in (1300, 1301):  # platform or content-security policy
        return ErrorCategory.CONTENT_POLICY
    # Bad credentials (1000-1004), no permission for the model or route (1103), or an IP
    # outside the whitelist (1304): nothing this request can fix, another provider may.
    if 1000 <= code <= 1004 or code in (1103, 1304):
        return ErrorCategory.PROVIDER_UNAVAILABLE
    if 1200 <= code <= 1203:
        return ErrorCategory.INVALID_REQUEST
    return None


def _failure(message: object) -> JobError:
    text = message.strip()[:500] if isinstance(message, str) and message.strip() else ""
    lowered = text.lower()
    if any(word in lowered for word in _POLICY_WORDS):
        return JobError(
            code=_CONTENT_CODE,
            message=text or "Kling's content check refused the task.",
            category=ErrorCategory.CONTENT_POLICY,
        )
    return JobError(
        code="failed",
        message=text or "The Kling task failed.",
        category=ErrorCategory.GENERATION_FAILED,
    )


def _usage(data: Mapping[str, Any]) -> Usage | None:
    result = data.get("task_result")
    videos = result.get("videos") if isinstance(result, dict) else None
    first = videos[0] if isinstance(videos, list) and videos else None
    seconds = _number(first.get("duration")) if isinstance(first, dict) else None
    units = _number(data.get("final_unit_deduction"))
    if seconds is None and units is None:
        return None
    # Kling bills resource-pack units, not money.
    return Usage(seconds=seconds, cost=units, currency="units" if units is not None else None)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def _seconds(value: object) -> int | None:
    """Kling's millisecond timestamps as Unix seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 <= value < 1e14:
        return None
    return int(value / 1000)
