"""What the simulated Ark knows about its Seedance models, as BytePlus documents them
(PROTOCOLS.md §1.9; model pages of late 2026).

The output sizes per ratio and resolution are the ones Ark reports for Seedance 2.x; the
simulator renders its clip at the same aspect ratio and bills tokens from them.
"""

from __future__ import annotations

from dataclasses import dataclass

RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
STATUSES = ("queued", "running", "cancelled", "succeeded", "failed", "expired")
SERVICE_TIERS = ("default", "flex")
IMAGE_ROLES = ("first_frame", "last_frame", "reference_image")
CONTENT_TYPES = ("text", "image_url", "video_url", "audio_url", "draft_task")

DEFAULT_DURATION = 5  # also what "-1" (the model picks the length) comes out as
DEFAULT_RESOLUTION = "720p"
DEFAULT_RATIO = "16:9"  # "adaptive" resolves to it: the simulator never looks at images
FRAMES_PER_SECOND = 24
MAX_REFERENCE_IMAGES = 9
MAX_REFERENCE_MEDIA = 3  # reference videos, and reference audio clips, each
MAX_SEED = 4_294_967_295
MAX_SAFETY_IDENTIFIER = 64
# execution_expires_after: a task still queued this long after creation becomes expired.
MIN_EXECUTION_EXPIRES = 3600
MAX_EXECUTION_EXPIRES = 259_200
DEFAULT_EXECUTION_EXPIRES = 172_800
# Task records can be read (and listed) for 7 days; a cancelled one for 24 hours.
RECORD_SECONDS = 7 * 86400
CANCELLED_RECORD_SECONDS = 86400
MAX_PAGE = 500
DEFAULT_PAGE_SIZE = 10


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelSpec:
    min_duration: int
    max_duration: int
    resolutions: tuple[str, ...]


_SEEDANCE_2 = ModelSpec(min_duration=4, max_duration=15, resolutions=("480p", "720p", "1080p"))
_SEEDANCE_2_LIGHT = ModelSpec(min_duration=4, max_duration=15, resolutions=("480p", "720p"))

MODELS = {
    "dreamina-seedance-2-0-260128": _SEEDANCE_2,
    "dreamina-seedance-2-0-fast-260128": _SEEDANCE_2_LIGHT,
    "dreamina-seedance-2-0-mini-260615": _SEEDANCE_2_LIGHT,
    "dreamina-seedance-2-5-260628": ModelSpec(
        min_duration=4, max_duration=30, resolutions=("480p", "720p", "1080p")
    ),
}


def model_spec(model: str) -> ModelSpec | None:
    """The model's limits; a custom inference endpoint (``ep-...``) stands for Seedance 2.0."""
    if model.startswith("ep-") and len(model) > 3:
        return _SEEDANCE_2
    return MODELS.get(model)


# (width, height) of the output for each resolution and ratio.
PIXELS = {
    "480p": {
        "16:9": (864, 496),
        "4:3": (752, 560),
        "1:1": (640, 640),
        "3:4": (560, 752),
        "9:16": (496, 864),
        "21:9": (992, 432),
    },
    "720p": {
        "16:9": (1280, 720),
        "4:3": (1112, 834),
        "1:1": (960, 960),
        "3:4": (834, 1112),
        "9:16": (720, 1280),
        "21:9": (1470, 630),
    },
    "1080p": {
        "16:9": (1920, 1080),
        "4:3": (1664, 1248),
        "1:1": (1440, 1440),
        "3:4": (1248, 1664),
        "9:16": (1080, 1920),
        "21:9": (2206, 946),
    },
}


def tokens(duration: int, resolution: str, ratio: str) -> int:
    """Ark's bill for a finished video: duration x width x height x 24 fps / 1024."""
    width, height = PIXELS[resolution][ratio]
    return duration * width * height * FRAMES_PER_SECOND // 1024
