"""What `POST /v1/video_generation` accepts, per model, as MiniMax's API reference lists it
(the text-to-video, image-to-video, first-and-last-frame and subject-reference pages).

One path serves four modes; the body decides which: `subject_reference` makes it S2V,
`last_frame_image` FL2V, `first_frame_image` I2V, and a bare prompt T2V. Each model only
takes some modes, and its durations and resolutions depend on each other (10 s only at
768P). A refusal is `2013 invalid params` under HTTP 200, like every MiniMax error.
Unknown fields are ignored, as the API does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vidgate.simulator.protocols.minimax import wire

MAX_PROMPT_CHARS = 2000
DEFAULT_DURATION = 6
BOOLEAN_FIELDS = ("prompt_optimizer", "fast_pretreatment", "aigc_watermark")

T2V, I2V, FL2V, S2V = "t2v", "i2v", "fl2v", "s2v"
_MODE_NAMES = {
    T2V: "text-to-video",
    I2V: "image-to-video",
    FL2V: "first-and-last-frame video",
    S2V: "subject-reference video",
}

_HAILUO = {6: ("768P", "1080P"), 10: ("768P",)}
_SERIES_01 = {6: ("720P",)}


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelRule:
    modes: frozenset[str]
    resolutions: Mapping[int, tuple[str, ...]]  # duration -> resolutions
    default_resolution: str
    i2v_only_resolutions: tuple[str, ...] = ()  # 512P: Hailuo-02 from one first frame only


MODELS: dict[str, ModelRule] = {
    "MiniMax-Hailuo-2.3": ModelRule(
        modes=frozenset({T2V, I2V}), resolutions=_HAILUO, default_resolution="768P"
    ),
    "MiniMax-Hailuo-2.3-Fast": ModelRule(
        modes=frozenset({I2V}), resolutions=_HAILUO, default_resolution="768P"
    ),
    "MiniMax-Hailuo-02": ModelRule(
        modes=frozenset({T2V, I2V, FL2V}),
        resolutions=_HAILUO,
        default_resolution="768P",
        i2v_only_resolutions=("512P",),
    ),
    "T2V-01-Director": ModelRule(
        modes=frozenset({T2V}), resolutions=_SERIES_01, default_resolution="720P"
    ),
    "T2V-01": ModelRule(modes=frozenset({T2V}), resolutions=_SERIES_01, default_resolution="720P"),
    "I2V-01-Director": ModelRule(
        modes=frozenset({I2V}), resolutions=_SERIES_01, default_resolution="720P"
    ),
    "I2V-01-live": ModelRule(
        modes=frozenset({I2V}), resolutions=_SERIES_01, default_resolution="720P"
    ),
    "I2V-01": ModelRule(modes=frozenset({I2V}), resolutions=_SERIES_01, default_resolution="720P"),
    "S2V-01": ModelRule(modes=frozenset({S2V}), resolutions=_SERIES_01, default_resolution="720P"),
}

# What each resolution renders at (T2V output is 16:9; an image would set its own ratio).
FRAME_SIZES = {
    "512P": (910, 512),
    "720P": (1280, 720),
    "768P": (1366, 768),
    "1080P": (1920, 1080),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateSpec:
    model: str
    prompt: str
    mode: str
    duration: int
    resolution: str
    callback_url: str | None

    @property
    def frame_size(self) -> tuple[int, int]:
        return FRAME_SIZES[self.resolution]


def parse_create(body: Mapping[str, Any]) -> CreateSpec:
    """The create body as a spec, or a `wire.MiniMaxError` 2013 naming the first problem."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required")
    rule = MODELS.get(model)
    if rule is None:
        raise invalid(f"model {model} is not supported")
    mode = _mode(body)
    if mode not in rule.modes:
        raise invalid(f"model {model} does not support {_MODE_NAMES[mode]}")
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise invalid("prompt must be a string")
    if mode == T2V and not prompt.strip():
        raise invalid("prompt is required")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise invalid(f"prompt is longer than {MAX_PROMPT_CHARS} characters")
    duration = body.get("duration", DEFAULT_DURATION)
    if isinstance(duration, bool) or not isinstance(duration, int):
        raise invalid("duration must be an integer")
    if duration not in rule.resolutions:
        raise invalid(f"duration {duration} is not supported by model {model}")
    resolution = body.get("resolution", rule.default_resolution)
    if not isinstance(resolution, str):
        raise invalid("resolution must be a string")
    allowed = rule.resolutions[duration] + (rule.i2v_only_resolutions if mode == I2V else ())
    if resolution not in allowed:
        raise invalid(f"resolution {resolution} is not supported by model {model} at {duration}s")
    for name in BOOLEAN_FIELDS:
        if name in body and not isinstance(body[name], bool):
            raise invalid(f"{name} must be a boolean")
    callback_url = body.get("callback_url")
    if callback_url is not None and not isinstance(callback_url, str):
        raise invalid("callback_url must be a string")
    return CreateSpec(
        model=model,
        prompt=prompt,
        mode=mode,
        duration=duration,
        resolution=resolution,
        callback_url=callback_url or None,
    )


def _mode(body: Mapping[str, Any]) -> str:
    if body.get("subject_reference") is not None:
        _subject_reference(body["subject_reference"])
        return S2V
    last = _image(body, "last_frame_image")
    first = _image(body, "first_frame_image")
    if last is not None:
        return FL2V
    return I2V if first is not None else T2V


def _image(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _image_reference(value):
        raise invalid(f"{name} must be a public URL or a base64 data URL")
    return value


def _subject_reference(value: object) -> None:
    # "Currently only a single subject" with a single image, of type "character".
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        raise invalid("subject_reference must hold exactly one subject")
    subject = value[0]
    if subject.get("type") != "character":
        raise invalid("subject_reference type must be character")
    images = subject.get("image")
    if (
        not isinstance(images, list)
        or len(images) != 1
        or not isinstance(images[0], str)
        or not _image_reference(images[0])
    ):
        raise invalid("subject_reference image must hold exactly one image URL")


def _image_reference(value: str) -> bool:
    return value.startswith(("http://", "https://", "data:image/"))


def invalid(detail: str) -> wire.MiniMaxError:
    return wire.MiniMaxError(wire.INVALID_PARAMS, f"invalid params, {detail}")
