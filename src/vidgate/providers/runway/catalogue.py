"""What each Runway model accepts, and the neutral request mapped to its wire body.

The per-model tables follow the official SDK's request types (``runwayml`` 5.24): which
endpoint serves a model, the pixel ``ratio`` strings it takes on each, its durations, and
its optional fields. Anything a model cannot do is refused here, before a paid call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageInput, ImageRole, duration_text
from vidgate.providers.base import ErrorCategory, SubmitRequest, UpstreamRejected

DEFAULT_MODELS = {
    "gen4.5": "gen4.5",
    "gen4_turbo": "gen4_turbo",
    "veo3.1": "veo3.1",
    "veo3.1_fast": "veo3.1_fast",
}
TEXT_TO_VIDEO = "/v1/text_to_video"
IMAGE_TO_VIDEO = "/v1/image_to_video"
# The wire fields a client may add through params.extra, checked like the rest.
_EXTRA_KEYS = ("contentModeration", "ratio")

# Neutral (aspect ratio, resolution) -> Runway's pixel ratio. 4:3, 3:4 and 21:9 are
# Runway's nearest shapes (1104x832 is 1.33, 1584x672 is 2.36).
PIXEL_RATIOS = {
    ("16:9", "720p"): "1280:720",
    ("9:16", "720p"): "720:1280",
    ("4:3", "720p"): "1104:832",
    ("3:4", "720p"): "832:1104",
    ("1:1", "720p"): "960:960",
    ("21:9", "720p"): "1584:672",
    ("16:9", "1080p"): "1920:1080",
    ("9:16", "1080p"): "1080:1920",
}
_GEN4_RATIOS = ("1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672")
_VEO_RATIOS = ("1280:720", "720:1280", "1080:1920", "1920:1080")


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """What one Runway model accepts (the official SDK's per-model request types)."""

    capabilities: Capabilities
    text_ratios: tuple[str, ...] | None  # None: the model needs an image
    image_ratios: tuple[str, ...]
    default_duration: int | None = None  # sent when the model requires a duration
    content_moderation: bool = False


_GEN4_CAPABILITIES = Capabilities(
    durations=tuple(float(d) for d in range(2, 11)),
    aspect_ratios=("16:9", "9:16", "4:3", "3:4", "1:1", "21:9"),
    resolutions=("720p",),
    image_roles=(ImageRole.FIRST_FRAME,),
    max_images=1,
    audio=False,
    negative_prompt=False,
    seed=True,
)
_VEO_CAPABILITIES = Capabilities(
    durations=(4.0, 6.0, 8.0),
    aspect_ratios=("16:9", "9:16"),
    resolutions=("720p", "1080p"),
    image_roles=(ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME),
    max_images=2,
    audio=True,
    negative_prompt=True,
    seed=True,
)
MODELS = {
    "gen4.5": ModelSpec(
        capabilities=_GEN4_CAPABILITIES,
        text_ratios=("1280:720", "720:1280"),
        image_ratios=_GEN4_RATIOS,
        default_duration=5,
        content_moderation=True,
    ),
    "gen4_turbo": ModelSpec(
        capabilities=_GEN4_CAPABILITIES,
        text_ratios=None,
        image_ratios=_GEN4_RATIOS,
        content_moderation=True,
    ),
    "veo3.1": ModelSpec(
        capabilities=_VEO_CAPABILITIES, text_ratios=_VEO_RATIOS, image_ratios=_VEO_RATIOS
    ),
    "veo3.1_fast": ModelSpec(
        capabilities=_VEO_CAPABILITIES, text_ratios=_VEO_RATIOS, image_ratios=_VEO_RATIOS
    ),
}
# A model Runway added after this table: nothing restricted, the request passed through.
UNKNOWN = ModelSpec(
    capabilities=Capabilities(
        image_roles=(ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME), max_images=2, audio=True
    ),
    text_ratios=tuple(PIXEL_RATIOS.values()),
    image_ratios=tuple(PIXEL_RATIOS.values()),
    content_moderation=True,
)


def spec_of(model: str) -> ModelSpec:
    return MODELS.get(model, UNKNOWN)


def wire_body(request: SubmitRequest) -> tuple[str, dict[str, Any]]:
    """The endpoint and JSON body for a neutral request; anything Runway cannot do is
    refused here, before a paid call."""
    params = request.params
    spec = spec_of(request.model)
    extra = _checked_extra(params.extra, spec)
    first, last = _frames(params.images)
    path = IMAGE_TO_VIDEO if first is not None else TEXT_TO_VIDEO
    ratios = spec.image_ratios if first is not None else spec.text_ratios
    if ratios is None:
        raise _refused(f"Runway model {request.model!r} needs a first-frame image")
    ratio = extra.pop("ratio", None) or _pixel_ratio(params.aspect_ratio, params.resolution)
    if ratio not in ratios:
        raise _refused(
            f"Runway model {request.model!r} cannot render {params.aspect_ratio or '16:9'} "
            f"at {params.resolution or '720p'}"
            + (" from text alone" if first is None else "")
            + f"; it offers {', '.join(ratios)}"
        )
    body: dict[str, Any] = {"model": request.model}
    if request.prompt:
        body["promptText"] = request.prompt
    if first is not None:
        if last is None:
            body["promptImage"] = first
        else:
            body["promptImage"] = [
                {"uri": first, "position": "first"},
                {"uri": last, "position": "last"},
            ]
    body["ratio"] = ratio
    duration = _duration(params.duration_seconds, spec)
    if duration is not None:
        body["duration"] = duration
    if params.seed is not None:
        body["seed"] = params.seed
    caps = spec.capabilities
    if params.negative_prompt:
        if not caps.negative_prompt:
            raise _refused(f"Runway model {request.model!r} takes no negative prompt")
        body["negativePrompt"] = params.negative_prompt
    if params.audio is not None:
        if caps.audio:
            body["audio"] = params.audio
        elif params.audio:
            raise _refused(f"Runway model {request.model!r} renders no sound")
    body.update(extra)
    return path, body


def _refused(message: str, code: str = "unsupported_parameter") -> UpstreamRejected:
    return UpstreamRejected(message, status=400, code=code, category=ErrorCategory.INVALID_REQUEST)


def _checked_extra(extra: Mapping[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """The extra wire fields a client may add, checked before anything is sent."""
    unknown = sorted(set(extra) - set(_EXTRA_KEYS))
    if unknown:
        raise _refused(
            f"extra may only set {', '.join(_EXTRA_KEYS)} for Runway, not {', '.join(unknown)}",
            "invalid_extra",
        )
    checked: dict[str, Any] = {}
    if "ratio" in extra:
        ratio = extra["ratio"]
        if not isinstance(ratio, str) or ratio not in spec.image_ratios + (spec.text_ratios or ()):
            offered = sorted(set(spec.image_ratios + (spec.text_ratios or ())))
            raise _refused(f"extra.ratio must be one of {', '.join(offered)}", "invalid_extra")
        checked["ratio"] = ratio
    if "contentModeration" in extra:
        moderation = extra["contentModeration"]
        if (
            not spec.content_moderation
            or not isinstance(moderation, dict)
            or set(moderation) - {"publicFigureThreshold"}
            or moderation.get("publicFigureThreshold", "auto") not in ("auto", "low")
        ):
            raise _refused(
                'extra.contentModeration must be {"publicFigureThreshold": "auto" | "low"} '
                "on a model that has it",
                "invalid_extra",
            )
        checked["contentModeration"] = dict(moderation)
    return checked


def _frames(images: tuple[ImageInput, ...]) -> tuple[str | None, str | None]:
    first = last = None
    for image in images:
        if image.role is ImageRole.FIRST_FRAME and first is None:
            first = image.url
        elif image.role is ImageRole.LAST_FRAME and last is None:
            last = image.url
        else:
            raise _refused(f"Runway takes one first and one last frame, not a {image.role} image")
    if last is not None and first is None:
        raise _refused("Runway needs a first frame to go with a last frame")
    return first, last


def _pixel_ratio(aspect_ratio: str | None, resolution: str | None) -> str | None:
    return PIXEL_RATIOS.get((aspect_ratio or "16:9", resolution or "720p"))


def _duration(seconds: float | None, spec: ModelSpec) -> int | None:
    if seconds is None:
        return spec.default_duration
    allowed = spec.capabilities.durations
    if not float(seconds).is_integer() or (
        allowed is not None and not any(abs(seconds - d) < 1e-9 for d in allowed)
    ):
        offered = ", ".join(duration_text(d) for d in allowed or ())
        raise _refused(f"Runway cannot make {duration_text(seconds)} s; it offers {offered}")
    return int(seconds)
