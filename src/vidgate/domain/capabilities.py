"""What a model can do, and the check that refuses a request it cannot (before anything
is sent upstream).

A field that is ``None`` in :class:`Capabilities` is not restricted. A request field that
is ``None`` asks for the upstream's default, which every model can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vidgate.domain.request import ImageRole, VideoParams


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    durations: tuple[float, ...] | None = None  # allowed lengths in seconds
    duration_range: tuple[float, float] | None = None  # or any length in [min, max]
    aspect_ratios: tuple[str, ...] | None = None
    resolutions: tuple[str, ...] | None = None
    image_roles: tuple[ImageRole, ...] = (ImageRole.FIRST_FRAME,)
    max_images: int | None = None
    audio: bool = False  # can generate sound
    negative_prompt: bool = True
    seed: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "durations": list(self.durations) if self.durations is not None else None,
            "durationRange": list(self.duration_range) if self.duration_range else None,
            "aspectRatios": list(self.aspect_ratios) if self.aspect_ratios is not None else None,
            "resolutions": list(self.resolutions) if self.resolutions is not None else None,
            "imageRoles": [str(r) for r in self.image_roles],
            "maxImages": self.max_images,
            "audio": self.audio,
            "negativePrompt": self.negative_prompt,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Capabilities:
        """From the TOML / JSON form (snake_case or camelCase keys)."""

        def pick(*names: str) -> Any:
            for name in names:
                if name in data:
                    return data[name]
            return None

        durations = pick("durations")
        span = pick("duration_range", "durationRange")
        ratios = pick("aspect_ratios", "aspectRatios")
        resolutions = pick("resolutions")
        roles = pick("image_roles", "imageRoles")
        audio = pick("audio")
        negative = pick("negative_prompt", "negativePrompt")
        seed = pick("seed")
        return cls(
            durations=tuple(float(d) for d in durations) if durations is not None else None,
            duration_range=(float(span[0]), float(span[1])) if span else None,
            aspect_ratios=tuple(str(r) for r in ratios) if ratios is not None else None,
            resolutions=tuple(str(r) for r in resolutions) if resolutions is not None else None,
            image_roles=tuple(ImageRole(r) for r in roles)
            if roles is not None
            else (ImageRole.FIRST_FRAME,),
            max_images=pick("max_images", "maxImages"),
            audio=bool(audio) if audio is not None else False,
            negative_prompt=bool(negative) if negative is not None else True,
            seed=bool(seed) if seed is not None else True,
        )


@dataclass(frozen=True, kw_only=True)
class Unsupported:
    """Why a request is refused: the field (as the client names it) and what is allowed."""

    field: str
    value: object
    supported: object

    def message(self, model: str) -> str:
        return f"Model {model!r} does not support {self.field}={self.value!r}."


def unsupported(params: VideoParams, caps: Capabilities) -> Unsupported | None:
    """The first field of ``params`` that ``caps`` cannot do, or None."""
    duration = params.duration_seconds
    if duration is not None:
        if caps.durations is not None and not any(abs(duration - d) < 1e-9 for d in caps.durations):
            return Unsupported(
                field="durationSeconds", value=duration, supported=list(caps.durations)
            )
        if caps.duration_range is not None:
            low, high = caps.duration_range
            if not low <= duration <= high:
                return Unsupported(
                    field="durationSeconds", value=duration, supported={"min": low, "max": high}
                )
    if (
        params.aspect_ratio is not None
        and caps.aspect_ratios is not None
        and params.aspect_ratio not in caps.aspect_ratios
    ):
        return Unsupported(
            field="aspectRatio", value=params.aspect_ratio, supported=list(caps.aspect_ratios)
        )
    if (
        params.resolution is not None
        and caps.resolutions is not None
        and params.resolution not in caps.resolutions
    ):
        return Unsupported(
            field="resolution", value=params.resolution, supported=list(caps.resolutions)
        )
    for image in params.images:
        if image.role not in caps.image_roles:
            return Unsupported(
                field="images.role",
                value=str(image.role),
                supported=[str(r) for r in caps.image_roles],
            )
    if caps.max_images is not None and len(params.images) > caps.max_images:
        return Unsupported(field="images", value=len(params.images), supported=caps.max_images)
    if params.audio and not caps.audio:
        return Unsupported(field="audio", value=True, supported=[False])
    if params.negative_prompt and not caps.negative_prompt:
        return Unsupported(field="negativePrompt", value=params.negative_prompt, supported=None)
    if params.seed is not None and not caps.seed:
        return Unsupported(field="seed", value=params.seed, supported=None)
    return None
