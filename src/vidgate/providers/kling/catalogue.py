"""What each Kling model accepts, and the neutral request mapped to its family (endpoint)
and wire body. Anything Kling cannot carry is refused here, before anything is sent."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageRole
from vidgate.providers.base import ErrorCategory, SubmitRequest, UpstreamRejected

TEXT2VIDEO = "text2video"
IMAGE2VIDEO = "image2video"
FAMILIES = (TEXT2VIDEO, IMAGE2VIDEO)

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
class Model:
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
    "kling-v3": Model(
        caps=_caps(tuple(float(s) for s in range(3, 16)), ("720p", "1080p"), 2, True),
        modes=_STD_PRO,
    ),
    "kling-v2-6": Model(
        caps=_caps(_CLASSIC, ("720p", "1080p"), 2, True), modes=_STD_PRO, sound_needs_pro=True
    ),
    "kling-v2-5-turbo": Model(caps=_caps(_CLASSIC, ("720p", "1080p"), 2, False), modes=_STD_PRO),
    "kling-v2-1-master": Model(caps=_caps(_CLASSIC, ("1080p",), 1, False), modes={}),
    "kling-v2-master": Model(caps=_caps(_CLASSIC, ("720p",), 1, False), modes={}),
    "kling-v1-6": Model(caps=_caps(_CLASSIC, ("720p", "1080p"), 2, False), modes=_STD_PRO),
}
GENERIC = Model(caps=_caps(_CLASSIC, ("720p", "1080p"), 2, False), modes=_STD_PRO)


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


def wire_body(provider: str, request: SubmitRequest, key: str) -> tuple[str, dict[str, Any]]:
    """The family (endpoint) and wire body; refuses what Kling cannot carry before
    anything is sent. ``provider`` (the configured name) prefixes every refusal."""
    params = request.params
    model = MODELS.get(request.model, GENERIC)
    firsts = [i.url for i in params.images if i.role is ImageRole.FIRST_FRAME]
    lasts = [i.url for i in params.images if i.role is ImageRole.LAST_FRAME]
    if len(firsts) + len(lasts) != len(params.images):
        _refuse(provider, "Kling takes a first and a last frame, not reference images")
    if len(firsts) > 1 or len(lasts) > 1:
        _refuse(provider, "Kling takes at most one first frame and one last frame")
    family = IMAGE2VIDEO if params.images else TEXT2VIDEO
    extra = _extra(provider, params.extra, family)
    if params.seed is not None:
        _refuse(provider, "Kling has no seed parameter")
    body: dict[str, Any] = {"model_name": request.model}
    if request.prompt or family == TEXT2VIDEO:
        body["prompt"] = request.prompt
    if params.negative_prompt:
        body["negative_prompt"] = params.negative_prompt
    if params.duration_seconds is not None:
        seconds = params.duration_seconds
        if not math.isfinite(seconds) or not float(seconds).is_integer():
            _refuse(provider, f"Kling takes whole seconds, not {seconds:g}")
        body["duration"] = str(int(seconds))
    mode = _mode(provider, model, request.model, params.resolution, extra.pop("mode", None))
    if params.audio is not None and (model.caps.audio or params.audio):
        if not model.caps.audio:
            _refuse(provider, f"{request.model} cannot generate sound")
        if params.audio and model.sound_needs_pro:
            if mode == "std":
                _refuse(provider, f"{request.model} generates sound only in pro mode (1080p)")
            mode = "pro"
        body["sound"] = "on" if params.audio else "off"
    if mode is not None:
        body["mode"] = mode
    # image2video has no aspect_ratio: the frame's own shape decides.
    if params.aspect_ratio is not None and family == TEXT2VIDEO:
        body["aspect_ratio"] = params.aspect_ratio
    if firsts:
        body["image"] = _image(provider, firsts[0])
    if lasts:
        body["image_tail"] = _image(provider, lasts[0])
    if request.callback_url:
        body["callback_url"] = request.callback_url
    body["external_task_id"] = key
    body.update(extra)
    return family, body


def _mode(
    provider: str, model: Model, name: str, resolution: str | None, asked: object
) -> str | None:
    mode = asked if isinstance(asked, str) else None
    if resolution is None:
        return mode
    if not model.modes:
        if resolution not in (model.caps.resolutions or ()):
            _refuse(provider, f"{name} renders {', '.join(model.caps.resolutions or ())} only")
        return mode
    wanted = model.modes.get(resolution)
    if wanted is None:
        _refuse(provider, f"{name} renders {' or '.join(model.modes)}, not {resolution}")
    if mode is not None and mode != wanted:
        _refuse(provider, f'extra mode "{mode}" contradicts resolution {resolution}')
    return wanted


def _extra(provider: str, extra: Mapping[str, Any], family: str) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for key, value in extra.items():
        rule = _EXTRAS.get(key)
        if rule is None:
            _refuse(
                provider, f"unknown Kling parameter {key!r} in extra; known: {', '.join(_EXTRAS)}"
            )
        check, expected, families = rule
        if family not in families:
            _refuse(provider, f"{key!r} only applies to {' and '.join(families)}")
        if not check(value):
            _refuse(provider, f"extra {key!r} must be {expected}")
        checked[key] = value
    return checked


def _image(provider: str, url: str) -> str:
    """A URL as it is; a data URL as the bare Base64 Kling wants (no ``data:`` prefix)."""
    if not url.startswith("data:"):
        return url
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64") or not payload:
        _refuse(provider, "a data URL image must be Base64-encoded")
    return payload


def _refuse(provider: str, message: str) -> NoReturn:
    raise UpstreamRejected(
        f"{provider}: {message}", status=400, category=ErrorCategory.INVALID_REQUEST
    )
