"""Runway's create bodies: the model catalogue and the validation the real API applies.

Runway validates a body against one schema per model (a union discriminated by ``model``)
and answers every problem at once, zod style::

    400 {"error": "Validation of body failed",
         "issues": [{"code": ..., "path": [...], "message": ...}],
         "docUrl": "https://docs.dev.runwayml.com/api"}

The catalogue holds the four video models vidgate's adapter knows, with the ratios,
durations and options the official SDK (``runwayml`` 5.24) lists for each of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vidgate.simulator.protocols.runway.envelope import RunwayError

IMAGE_TO_VIDEO = "image_to_video"
TEXT_TO_VIDEO = "text_to_video"

MAX_PROMPT_UNITS = 1000  # UTF-16 code units, as Runway counts them
MAX_SEED = 4_294_967_295
MAX_URL_CHARS = 2048
GEN4_RATIOS = ("1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672")
VEO_RATIOS = ("1280:720", "720:1280", "1080:1920", "1920:1080")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelSpec:
    name: str
    text_ratios: tuple[str, ...] | None  # None: not served by text_to_video
    image_ratios: tuple[str, ...] | None  # None: not served by image_to_video
    durations: tuple[int, ...]
    default_duration: int
    duration_required: bool
    prompt_required_with_image: bool
    positions: tuple[str, ...]  # promptImage positions it accepts
    options: frozenset[str]  # optional keys beyond the common ones
    credits_per_second: int
    credits_per_second_with_audio: int | None = None  # models that price sound extra

    def ratios(self, endpoint: str) -> tuple[str, ...] | None:
        return self.image_ratios if endpoint == IMAGE_TO_VIDEO else self.text_ratios


_GEN4_OPTIONS = frozenset({"contentModeration"})
_VEO_OPTIONS = frozenset({"audio", "negativePrompt"})

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="gen4.5",
            text_ratios=("1280:720", "720:1280"),
            image_ratios=GEN4_RATIOS,
            durations=tuple(range(2, 11)),
            default_duration=5,
            duration_required=True,
            prompt_required_with_image=True,
            positions=("first",),
            options=_GEN4_OPTIONS | {"outputFormat", "proresProfile"},
            credits_per_second=12,
        ),
        ModelSpec(
            name="gen4_turbo",
            text_ratios=None,
            image_ratios=GEN4_RATIOS,
            durations=tuple(range(2, 11)),
            default_duration=10,
            duration_required=False,
            prompt_required_with_image=False,
            positions=("first",),
            options=_GEN4_OPTIONS,
            credits_per_second=5,
        ),
        ModelSpec(
            name="veo3.1",
            text_ratios=VEO_RATIOS,
            image_ratios=VEO_RATIOS,
            durations=(4, 6, 8),
            default_duration=8,
            duration_required=False,
            prompt_required_with_image=False,
            positions=("first", "last"),
            options=_VEO_OPTIONS,
            credits_per_second=20,
            credits_per_second_with_audio=40,
        ),
        ModelSpec(
            name="veo3.1_fast",
            text_ratios=VEO_RATIOS,
            image_ratios=VEO_RATIOS,
            durations=(4, 6, 8),
            default_duration=8,
            duration_required=False,
            prompt_required_with_image=False,
            positions=("first", "last"),
            options=_VEO_OPTIONS,
            credits_per_second=10,
            credits_per_second_with_audio=15,
        ),
    )
}
_COMMON_KEYS = frozenset({"model", "promptText", "ratio", "duration", "seed"})


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskRequest:
    """A valid create body, reduced to what the simulated task needs."""

    endpoint: str
    model: str
    prompt_text: str
    ratio: str
    duration: int
    audio: bool
    credits: int


def parse(endpoint: str, body: object) -> TaskRequest:
    """The request a create body asks for, or a ``RunwayError`` listing every issue."""
    if not isinstance(body, dict):
        raise RunwayError.validation([_type_issue([], "object", body)])
    spec = _model(endpoint, body.get("model"))
    issues: list[dict[str, Any]] = []
    allowed = _COMMON_KEYS | spec.options
    if endpoint == IMAGE_TO_VIDEO:
        allowed |= {"promptImage"}
    unknown = sorted(key for key in body if key not in allowed)
    if unknown:
        listed = ", ".join(f"'{key}'" for key in unknown)
        issues.append(
            {
                "code": "unrecognized_keys",
                "keys": unknown,
                "path": [],
                "message": f"Unrecognized key(s) in object: {listed}",
            }
        )
    text_required = endpoint == TEXT_TO_VIDEO or spec.prompt_required_with_image
    prompt = _prompt(body, required=text_required, issues=issues)
    ratios = spec.ratios(endpoint) or ()
    ratio = body.get("ratio")
    if ratio is None:
        issues.append(_required(["ratio"], "string"))
    elif ratio not in ratios:
        issues.append(_enum_issue(["ratio"], ratios, ratio))
    duration = _duration(spec, body, issues)
    _seed(body, issues)
    audio = _options(spec, body, issues)
    if endpoint == IMAGE_TO_VIDEO:
        _prompt_image(spec, body.get("promptImage"), issues)
    if issues:
        raise RunwayError.validation(issues)
    per_second = spec.credits_per_second
    if audio and spec.credits_per_second_with_audio is not None:
        per_second = spec.credits_per_second_with_audio
    return TaskRequest(
        endpoint=endpoint,
        model=spec.name,
        prompt_text=prompt,
        ratio=str(ratio),
        duration=duration,
        audio=audio,
        credits=per_second * duration,
    )


def _model(endpoint: str, model: object) -> ModelSpec:
    served = [name for name, spec in MODELS.items() if spec.ratios(endpoint) is not None]
    spec = MODELS.get(model) if isinstance(model, str) else None
    if spec is None or spec.ratios(endpoint) is None:
        expected = " | ".join(f"'{name}'" for name in served)
        raise RunwayError.validation(
            [
                {
                    "code": "invalid_union_discriminator",
                    "options": served,
                    "path": ["model"],
                    "message": f"Invalid discriminator value. Expected {expected}",
                }
            ]
        )
    return spec


def _prompt(body: Mapping[str, Any], *, required: bool, issues: list[dict[str, Any]]) -> str:
    value = body.get("promptText")
    if value is None:
        if required:
            issues.append(_required(["promptText"], "string"))
        return ""
    if not isinstance(value, str):
        issues.append(_type_issue(["promptText"], "string", value))
        return ""
    units = len(value.encode("utf-16-le")) // 2
    if units < 1:
        issues.append(_size_issue("too_small", ["promptText"], "string", 1))
    elif units > MAX_PROMPT_UNITS:
        issues.append(_size_issue("too_big", ["promptText"], "string", MAX_PROMPT_UNITS))
    return value


def _duration(spec: ModelSpec, body: Mapping[str, Any], issues: list[dict[str, Any]]) -> int:
    value = body.get("duration")
    if value is None:
        if spec.duration_required:
            issues.append(_required(["duration"], "number"))
        return spec.default_duration
    if isinstance(value, bool) or not isinstance(value, int | float):
        issues.append(_type_issue(["duration"], "number", value))
        return spec.default_duration
    if not float(value).is_integer():
        issues.append(
            {
                "code": "invalid_type",
                "expected": "integer",
                "received": "float",
                "path": ["duration"],
                "message": "Expected integer, received float",
            }
        )
        return spec.default_duration
    seconds = int(value)
    if seconds not in spec.durations:
        low, high = min(spec.durations), max(spec.durations)
        if spec.durations == tuple(range(low, high + 1)):
            kind = "too_small" if seconds < low else "too_big"
            issues.append(_size_issue(kind, ["duration"], "number", low if seconds < low else high))
        else:
            issues.append(_enum_issue(["duration"], spec.durations, seconds))
        return spec.default_duration
    return seconds


def _seed(body: Mapping[str, Any], issues: list[dict[str, Any]]) -> None:
    value = body.get("seed")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        issues.append(_type_issue(["seed"], "integer", value))
    elif value < 0:
        issues.append(_size_issue("too_small", ["seed"], "number", 0))
    elif value > MAX_SEED:
        issues.append(_size_issue("too_big", ["seed"], "number", MAX_SEED))


def _options(spec: ModelSpec, body: Mapping[str, Any], issues: list[dict[str, Any]]) -> bool:
    """Check the model's own options; returns whether the video gets sound."""
    audio = "audio" in spec.options  # Veo renders sound unless told not to
    if "audio" in body and "audio" in spec.options:
        if isinstance(body["audio"], bool):
            audio = body["audio"]
        else:
            issues.append(_type_issue(["audio"], "boolean", body["audio"]))
    negative = body.get("negativePrompt")
    if negative is not None and "negativePrompt" in spec.options and not isinstance(negative, str):
        issues.append(_type_issue(["negativePrompt"], "string", negative))
    moderation = body.get("contentModeration")
    if moderation is not None and "contentModeration" in spec.options:
        if not isinstance(moderation, dict):
            issues.append(_type_issue(["contentModeration"], "object", moderation))
        else:
            threshold = moderation.get("publicFigureThreshold")
            if threshold is not None and threshold not in ("auto", "low"):
                issues.append(
                    _enum_issue(
                        ["contentModeration", "publicFigureThreshold"], ("auto", "low"), threshold
                    )
                )
    return audio


def _prompt_image(spec: ModelSpec, value: object, issues: list[dict[str, Any]]) -> None:
    if value is None:
        issues.append(_required(["promptImage"], "string"))
        return
    if isinstance(value, str):
        _asset(["promptImage"], value, issues)
        return
    if not isinstance(value, list):
        issues.append(_type_issue(["promptImage"], "array", value))
        return
    if not value:
        issues.append(_size_issue("too_small", ["promptImage"], "array", 1))
        return
    positions: list[str] = []
    for index, item in enumerate(value):
        path: list[str | int] = ["promptImage", index]
        if not isinstance(item, dict):
            issues.append(_type_issue(path, "object", item))
            continue
        position = item.get("position")
        if position not in spec.positions:
            issues.append(_enum_issue([*path, "position"], spec.positions, position))
        else:
            positions.append(position)
        uri = item.get("uri")
        if not isinstance(uri, str):
            issues.append(
                _required([*path, "uri"], "string")
                if uri is None
                else _type_issue([*path, "uri"], "string", uri)
            )
        else:
            _asset([*path, "uri"], uri, issues)
    if len(positions) != len(set(positions)):
        issues.append(_custom(["promptImage"], "Each position may only be used once."))
    if positions and "first" not in positions:
        issues.append(
            _custom(["promptImage"], "A last frame requires a first frame for this model.")
        )


def _asset(path: list[str | int], uri: str, issues: list[dict[str, Any]]) -> None:
    """The checks Runway makes before fetching an asset (its troubleshooting guide)."""
    if uri.startswith("runway://"):
        return
    if uri.startswith("data:"):
        header, sep, _ = uri.partition(",")
        if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
            issues.append(_custom(path, "Invalid data URI."))
        return
    if len(uri) > MAX_URL_CHARS:
        issues.append(_size_issue("too_big", path, "string", MAX_URL_CHARS))
        return
    parts = urlsplit(uri)
    if parts.scheme != "https":
        issues.append(_custom(path, "Only HTTPS URLs are allowed."))
        return
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host or "." not in host:
            issues.append(_custom(path, "Invalid URL"))
        return
    issues.append(_custom(path, "URLs must be hosted on a domain."))


# -- zod-shaped issues ---------------------------------------------------------------------


def _received(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_issue(path: list[str | int], expected: str, value: object) -> dict[str, Any]:
    received = _received(value)
    return {
        "code": "invalid_type",
        "expected": expected,
        "received": received,
        "path": path,
        "message": f"Expected {expected}, received {received}",
    }


def _required(path: list[str | int], expected: str) -> dict[str, Any]:
    return {
        "code": "invalid_type",
        "expected": expected,
        "received": "undefined",
        "path": path,
        "message": "Required",
    }


def _enum_issue(path: list[str | int], options: tuple[Any, ...], value: object) -> dict[str, Any]:
    expected = " | ".join(f"'{option}'" for option in options)
    return {
        "code": "invalid_enum_value",
        "options": list(options),
        "received": value,
        "path": path,
        "message": f"Invalid enum value. Expected {expected}, received '{value}'",
    }


def _size_issue(kind: str, path: list[str | int], type_: str, bound: int) -> dict[str, Any]:
    key = "minimum" if kind == "too_small" else "maximum"
    if type_ == "string":
        word = "at least" if kind == "too_small" else "at most"
        message = f"String must contain {word} {bound} character(s)"
    elif type_ == "array":
        message = f"Array must contain at least {bound} element(s)"
    else:
        word = "greater than or equal to" if kind == "too_small" else "less than or equal to"
        message = f"Number must be {word} {bound}"
    return {
        "code": kind,
        key: bound,
        "type": type_,
        "inclusive": True,
        "path": path,
        "message": message,
    }


def _custom(path: list[str | int], message: str) -> dict[str, Any]:
    return {"code": "custom", "path": path, "message": message}
