"""Reading a Kling create body the way the vendor documents it, refusing with 400/1201.

The model table follows the vendor's capability map (PROTOCOLS.md §1.4 and the Kling API
reference): ``duration`` is a string, "5" or "10" (kling-v3: "3" to "15"); ``mode`` is std
or pro; ``sound`` exists from kling-v2-6 on and, for kling-v2-6, only in pro mode.
Unknown fields are ignored; an unknown ``model_name`` is 404/1203 ("resource does not
exist, e.g. the model").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vidgate.simulator.protocols.kling.envelope import KlingError, invalid

TEXT2VIDEO = "text2video"
IMAGE2VIDEO = "image2video"
FAMILIES = (TEXT2VIDEO, IMAGE2VIDEO)
BOTH = frozenset(FAMILIES)
RATIOS = ("16:9", "9:16", "1:1")
MODES = ("std", "pro")
MAX_PROMPT_CHARS = 2500
DEFAULT_MODEL = "kling-v1"
_CLASSIC = ("5", "10")


@dataclass(frozen=True, slots=True)
class Model:
    durations: tuple[str, ...] = _CLASSIC
    families: frozenset[str] = BOTH
    sound: bool = False
    sound_needs_pro: bool = False


MODELS = {
    "kling-v1": Model(),
    "kling-v1-5": Model(families=frozenset({IMAGE2VIDEO})),
    "kling-v1-6": Model(),
    "kling-v2-master": Model(),
    "kling-v2-1": Model(families=frozenset({IMAGE2VIDEO})),
    "kling-v2-1-master": Model(),
    "kling-v2-5-turbo": Model(),
    "kling-v2-6": Model(sound=True, sound_needs_pro=True),
    "kling-v3": Model(durations=tuple(str(s) for s in range(3, 16)), sound=True),
}

# Kling's default output sizes, for the simulator's rendered clip (its aspect ratio only).
SIZES = {"16:9": "1280x720", "9:16": "720x1280", "1:1": "720x720"}


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateParams:
    family: str
    model_name: str
    prompt: str
    negative_prompt: str
    mode: str
    duration: str
    aspect_ratio: str
    sound: str
    image: str | None
    image_tail: str | None
    callback_url: str | None
    external_task_id: str | None


def create_params(family: str, body: Mapping[str, Any]) -> CreateParams:
    model_name = _text(body, "model_name") or DEFAULT_MODEL
    model = MODELS.get(model_name)
    if model is None:
        raise KlingError(404, 1203, f"model_name {model_name} does not exist")
    if family not in model.families:
        raise invalid(f"model_name {model_name} does not support {family}")
    prompt = _text(body, "prompt") or ""
    if family == TEXT2VIDEO and not prompt.strip():
        raise invalid("prompt is required")
    negative = _text(body, "negative_prompt") or ""
    for name, value in (("prompt", prompt), ("negative_prompt", negative)):
        if len(value) > MAX_PROMPT_CHARS:
            raise invalid(f"{name} cannot exceed {MAX_PROMPT_CHARS} characters")
    mode = _choice(body, "mode", "std", MODES)
    duration = _choice(body, "duration", "5", model.durations)
    aspect_ratio = _choice(body, "aspect_ratio", "16:9", RATIOS)
    sound = _choice(body, "sound", "off", ("on", "off"))
    if sound == "on" and not model.sound:
        raise invalid(f"model_name {model_name} does not support sound")
    if sound == "on" and model.sound_needs_pro and mode != "pro":
        raise invalid(f"sound is only supported in pro mode for {model_name}")
    cfg_scale = body.get("cfg_scale")
    if cfg_scale is not None and (
        isinstance(cfg_scale, bool)
        or not isinstance(cfg_scale, int | float)
        or not 0 <= cfg_scale <= 1
    ):
        raise invalid("cfg_scale must be a number in [0, 1]")
    image = _image(body, "image")
    image_tail = _image(body, "image_tail")
    if family == IMAGE2VIDEO and image is None and image_tail is None:
        raise invalid("image and image_tail cannot both be empty")
    return CreateParams(
        family=family,
        model_name=model_name,
        prompt=prompt,
        negative_prompt=negative,
        mode=mode,
        duration=duration,
        aspect_ratio=aspect_ratio,
        sound=sound,
        image=image if family == IMAGE2VIDEO else None,
        image_tail=image_tail if family == IMAGE2VIDEO else None,
        callback_url=_text(body, "callback_url") or None,
        external_task_id=_text(body, "external_task_id") or None,
    )


def page_param(value: str | None, name: str, default: int, highest: int) -> int:
    """``pageNum`` (1..1000) and ``pageSize`` (1..500) of the list query."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid(f"{name} must be an integer") from None
    if not 1 <= number <= highest:
        raise invalid(f"{name} must be in [1, {highest}]")
    return number


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    return value


def _choice(body: Mapping[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _text(body, name)
    if value is None or value == "":
        return default
    if value not in allowed:
        raise invalid(f"{name} must be one of {', '.join(allowed)}")
    return value


def _image(body: Mapping[str, Any], name: str) -> str | None:
    value = _text(body, name)
    if not value:
        return None
    # The vendor: "Base64 ... do NOT add the data:image/png;base64, prefix".
    if value.startswith("data:"):
        raise invalid(f"{name} must be a URL or raw Base64, without a data: prefix")
    return value
