"""The neutral video request: what a client asks for, in no upstream's words.

Every adapter maps this to its own wire body. The seed's ``seconds`` / ``size`` strings
(the OpenAI ``/v1/videos`` shape) stay accepted and are translated here, both ways: a
client that sends ``size = "1280x720"`` asks for ``aspectRatio = "16:9"`` at ``720p``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ImageRole(StrEnum):
    FIRST_FRAME = "first_frame"
    LAST_FRAME = "last_frame"
    REFERENCE = "reference"


@dataclass(frozen=True, kw_only=True)
class ImageInput:
    url: str
    role: ImageRole = ImageRole.FIRST_FRAME


@dataclass(frozen=True, kw_only=True)
class VideoParams:
    """The neutral fields of a request beyond the prompt and the model.

    ``None`` means "the upstream's default": an adapter sends nothing for it.
    """

    duration_seconds: float | None = None
    aspect_ratio: str | None = None  # "16:9", "9:16", "1:1", ...
    resolution: str | None = None  # "480p", "720p", "1080p", ...
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None
    images: tuple[ImageInput, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The stored / shown form (camelCase), without unset fields."""
        out: dict[str, Any] = {}
        if self.duration_seconds is not None:
            out["durationSeconds"] = self.duration_seconds
        if self.aspect_ratio is not None:
            out["aspectRatio"] = self.aspect_ratio
        if self.resolution is not None:
            out["resolution"] = self.resolution
        if self.negative_prompt is not None:
            out["negativePrompt"] = self.negative_prompt
        if self.seed is not None:
            out["seed"] = self.seed
        if self.audio is not None:
            out["audio"] = self.audio
        if self.images:
            out["images"] = [{"url": i.url, "role": str(i.role)} for i in self.images]
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> VideoParams:
        if not data:
            return cls()
        images = tuple(
            ImageInput(url=str(i["url"]), role=ImageRole(i.get("role", "first_frame")))
            for i in data.get("images", ())
        )
        duration = data.get("durationSeconds")
        return cls(
            duration_seconds=float(duration) if duration is not None else None,
            aspect_ratio=data.get("aspectRatio"),
            resolution=data.get("resolution"),
            negative_prompt=data.get("negativePrompt"),
            seed=data.get("seed"),
            audio=data.get("audio"),
            images=images,
            extra=dict(data.get("extra") or {}),
        )


# Sora-style sizes and the neutral (aspect ratio, resolution) they stand for.
_SIZES = {
    "1280x720": ("16:9", "720p"),
    "720x1280": ("9:16", "720p"),
    "1792x1024": ("16:9", "1080p"),
    "1024x1792": ("9:16", "1080p"),
    "1920x1080": ("16:9", "1080p"),
    "1080x1920": ("9:16", "1080p"),
    "854x480": ("16:9", "480p"),
    "480x854": ("9:16", "480p"),
    "1024x1024": ("1:1", "1080p"),
    "720x720": ("1:1", "720p"),
    "480x480": ("1:1", "480p"),
}
_KNOWN_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21", "3:2", "2:3")


def size_to_neutral(size: str | None) -> tuple[str | None, str | None]:
    """``"1280x720"`` -> ``("16:9", "720p")``; an unreadable size -> ``(None, None)``."""
    if not size:
        return None, None
    if size in _SIZES:
        return _SIZES[size]
    width_text, sep, height_text = size.partition("x")
    if not sep or not width_text.isdigit() or not height_text.isdigit():
        return None, None
    width, height = int(width_text), int(height_text)
    if width <= 0 or height <= 0:
        return None, None
    ratio = width / height
    nearest = min(_KNOWN_RATIOS, key=lambda r: abs(_ratio_value(r) - ratio))
    return nearest, f"{min(width, height)}p"


def neutral_to_size(aspect_ratio: str | None, resolution: str | None) -> str | None:
    """The Sora size for an aspect ratio and resolution, or None when none fits."""
    for size, (ratio, res) in _SIZES.items():
        if ratio == (aspect_ratio or "16:9") and res == (resolution or "720p"):
            return size
    return None


def _ratio_value(ratio: str) -> float:
    width, _, height = ratio.partition(":")
    return float(width) / float(height)


def seconds_to_duration(seconds: str | None) -> float | None:
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def duration_text(value: float) -> str:
    """8.0 -> "8", 2.5 -> "2.5": the seed's string form of a duration."""
    return str(int(value)) if float(value).is_integer() else str(value)
