"""What each Seedance model accepts, and the neutral request mapped to Ark's create body
(a ``content`` array plus JSON fields). Anything Seedance cannot carry is refused here,
before anything is sent."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageRole
from vidgate.providers.base import ErrorCategory, SubmitRequest, UpstreamRejected

# Client model name -> Ark model id, when the provider's config lists none.
DEFAULT_MODELS: dict[str, str] = {
    "seedance-2.0": "dreamina-seedance-2-0-260128",
    "seedance-2.0-fast": "dreamina-seedance-2-0-fast-260128",
    "seedance-2.0-mini": "dreamina-seedance-2-0-mini-260615",
    "seedance-2.5": "dreamina-seedance-2-5-260628",
}

_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
_ALL_ROLES = (ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME, ImageRole.REFERENCE)


def _seedance(max_seconds: int, resolutions: tuple[str, ...]) -> Capabilities:
    # Whole seconds only; first/last frames or up to 9 reference images; sound on request;
    # no negative prompt field exists.
    return Capabilities(
        durations=tuple(float(s) for s in range(4, max_seconds + 1)),
        aspect_ratios=_RATIOS,
        resolutions=resolutions,
        image_roles=_ALL_ROLES,
        max_images=9,
        audio=True,
        negative_prompt=False,
        seed=True,
    )


CAPABILITIES: dict[str, Capabilities] = {
    "dreamina-seedance-2-0-260128": _seedance(15, ("480p", "720p", "1080p")),
    "dreamina-seedance-2-0-fast-260128": _seedance(15, ("480p", "720p")),
    "dreamina-seedance-2-0-mini-260615": _seedance(15, ("480p", "720p")),
    "dreamina-seedance-2-5-260628": _seedance(30, ("480p", "720p", "1080p")),
}
# A custom endpoint id (ep-...) or a model we do not know: only what every Seedance does.
UNKNOWN_MODEL = Capabilities(
    aspect_ratios=_RATIOS,
    image_roles=_ALL_ROLES,
    max_images=9,
    audio=True,
    negative_prompt=False,
)

_ROLES = {
    ImageRole.FIRST_FRAME: "first_frame",
    ImageRole.LAST_FRAME: "last_frame",
    ImageRole.REFERENCE: "reference_image",
}


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The Ark fields a request may add through ``params.extra``, and what each must be.
EXTRA_FIELDS: dict[str, Callable[[object], bool]] = {
    "watermark": lambda v: isinstance(v, bool),
    "camera_fixed": lambda v: isinstance(v, bool),
    "return_last_frame": lambda v: isinstance(v, bool),
    "draft": lambda v: isinstance(v, bool),
    "service_tier": lambda v: v in ("default", "flex"),
    "execution_expires_after": lambda v: is_int(v) and v in range(3600, 259_201),
    "safety_identifier": lambda v: isinstance(v, str) and 0 < len(v) <= 64,
}


def wire_body(request: SubmitRequest) -> dict[str, Any]:
    """The create body for ``request``; an impossible request is refused here, before
    anything is sent."""
    params = request.params
    if params.negative_prompt:
        raise _refuse("Seedance has no negative prompt")
    content: list[dict[str, Any]] = []
    if request.prompt:
        content.append({"type": "text", "text": request.prompt})
    for image in params.images:
        content.append(
            {"type": "image_url", "image_url": {"url": image.url}, "role": _ROLES[image.role]}
        )
    body: dict[str, Any] = {"model": request.model, "content": content}
    if params.aspect_ratio is not None:
        body["ratio"] = params.aspect_ratio
    if params.duration_seconds is not None:
        duration = params.duration_seconds
        if not math.isfinite(duration) or not float(duration).is_integer():
            raise _refuse(f"Seedance takes whole seconds, not {duration:g}")
        body["duration"] = int(duration)
    if params.resolution is not None:
        body["resolution"] = params.resolution
    if params.seed is not None:
        if not -1 <= params.seed <= 4_294_967_295:
            raise _refuse("seed must be between -1 and 4294967295")
        body["seed"] = params.seed
    if params.audio is not None:
        body["generate_audio"] = params.audio
    if request.callback_url:
        body["callback_url"] = request.callback_url
    body.update(_extra(params.extra))
    return body


def _refuse(message: str) -> UpstreamRejected:
    return UpstreamRejected(message, status=400, category=ErrorCategory.INVALID_REQUEST)


def _extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """``params.extra`` checked against the Ark fields it may set (unknown or mistyped keys
    are refused: a typo must not silently change nothing, or a core field)."""
    for key, value in extra.items():
        check = EXTRA_FIELDS.get(key)
        if check is None:
            raise _refuse(
                f"Unknown Seedance parameter {key!r}; allowed: {', '.join(sorted(EXTRA_FIELDS))}."
            )
        if not check(value):
            raise _refuse(f"Invalid value for the Seedance parameter {key!r}.")
    return dict(extra)
