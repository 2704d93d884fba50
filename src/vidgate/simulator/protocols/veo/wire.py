"""What a ``predictLongRunning`` body may hold on each surface, and the operations the
simulator answers with.

The rules follow the official SDK (``google-genai``): the Gemini API takes no ``seed``,
``generateAudio``, ``storageUri``, ``gcsUri`` images or the other Vertex-only
parameters; Veo 3.1 makes 4, 6 or 8 second clips in 16:9 or 9:16, at 720p, 1080p or 4k
(the last two only at 8 seconds, 4k not on the lite model). Messages copy Google's
wording where it is known.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vidgate.simulator import jobs
from vidgate.simulator.protocols.veo.google import GoogleError
from vidgate.simulator.state import SimState

PROTOCOL = "gemini-veo"

GEMINI_MODELS = (
    "veo-3.1-generate-preview",
    "veo-3.1-fast-generate-preview",
    "veo-3.1-lite-generate-preview",
)
VERTEX_MODELS = (
    "veo-3.1-generate-001",
    "veo-3.1-fast-generate-001",
    "veo-3.1-generate-preview",
    "veo-3.1-fast-generate-preview",
)
ASPECT_RATIOS = {"16:9": "1280x720", "9:16": "720x1280"}
DURATIONS = (4, 6, 8)
RESOLUTIONS = ("720p", "1080p", "4k")
PERSON_GENERATION = ("allow_all", "allow_adult", "dont_allow")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_REFERENCE_IMAGES = 3

# Parameters both surfaces take, and those only Vertex takes (the SDK refuses these in
# Gemini mode with "... is only supported in ... Platform mode").
_COMMON_PARAMETERS = frozenset(
    {
        "aspectRatio",
        "durationSeconds",
        "resolution",
        "negativePrompt",
        "personGeneration",
        "sampleCount",
        "enhancePrompt",
    }
)
_VERTEX_PARAMETERS = frozenset(
    {"seed", "generateAudio", "storageUri", "compressionQuality", "resizeMode", "fps"}
)
_INSTANCE_FIELDS = frozenset({"prompt", "image", "lastFrame", "referenceImages"})

GEMINI_RESPONSE_TYPE = (
    "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
)
VERTEX_RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"

RAI_REASON = (
    "The video could not be generated because it may violate Google's Responsible AI "
    "practices. Try rephrasing the prompt. If you think this was an error, send feedback. "
    "Support codes: 17301594"
)
INTERNAL_ERROR = {"code": 13, "message": "Video generation failed due to an internal error."}


@dataclass(frozen=True, kw_only=True, slots=True)
class Operation:
    """One ``predictLongRunning`` call: its name, the job behind it, and its outputs."""

    name: str
    job_id: str
    vertex: bool
    model: str
    samples: int
    file_ids: tuple[str, ...] = ()  # Gemini: one generated file per sample
    storage_uri: str | None = None  # Vertex: write to GCS instead of answering bytes


@dataclass
class VeoState:
    """Kept in ``SimState.protocol_state["gemini-veo"]``."""

    operations: dict[str, Operation] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # file id -> job id
    tokens: dict[str, float] = field(default_factory=dict)  # access token -> expiry


def veo_state(state: SimState) -> VeoState:
    """This protocol's part of the simulator's state, made on first use."""
    found = state.protocol_state.get(PROTOCOL)
    if not isinstance(found, VeoState):
        found = VeoState()
        state.protocol_state[PROTOCOL] = found
    return found


@dataclass(frozen=True, kw_only=True, slots=True)
class Submission:
    """What the simulator keeps of a valid ``predictLongRunning`` body."""

    prompt: str
    size: str
    seconds: int
    samples: int
    storage_uri: str | None


def new_gemini_operation_id() -> str:
    # Lowercase letters and digits, as Gemini's operation and file ids are.
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def new_vertex_operation_id() -> str:
    return str(uuid.uuid4())


def invalid(message: str) -> GoogleError:
    return GoogleError(400, message)


def _unsupported(name: str, vertex: bool) -> GoogleError:
    where = "Vertex AI" if vertex else "Gemini API"
    return invalid(
        f"`{name}` isn't supported by this model. Please remove it or refer to the "
        f"{where} documentation for supported usage."
    )


def parse(body: object, *, model: str, vertex: bool) -> Submission:
    """Validate a ``predictLongRunning`` body; a ``GoogleError`` says what is wrong."""
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    for key in body:
        if key not in ("instances", "parameters") and not (vertex and key == "labels"):
            raise invalid(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1:
        raise invalid("Request must contain exactly one instance in `instances`.")
    instance = instances[0]
    if not isinstance(instance, dict):
        raise invalid("`instances[0]` must be an object.")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise invalid("`parameters` must be an object.")
    prompt = _instance(instance, vertex=vertex)
    return _parameters(parameters, prompt=prompt, model=model, vertex=vertex)


def _instance(instance: dict[str, Any], *, vertex: bool) -> str:
    for key in instance:
        if key not in _INSTANCE_FIELDS:
            raise _unsupported(key, vertex)
    prompt = instance.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise invalid("`prompt` must be a string.")
    if "image" in instance:
        _image(instance["image"], "image", vertex=vertex)
    if "lastFrame" in instance:
        if "image" not in instance:
            raise invalid("`lastFrame` requires `image` (the first frame).")
        _image(instance["lastFrame"], "lastFrame", vertex=vertex)
    if "referenceImages" in instance:
        references = instance["referenceImages"]
        if not isinstance(references, list) or not 1 <= len(references) <= MAX_REFERENCE_IMAGES:
            raise invalid(f"`referenceImages` takes 1 to {MAX_REFERENCE_IMAGES} images.")
        for index, reference in enumerate(references):
            where = f"referenceImages[{index}]"
            if not isinstance(reference, dict) or "image" not in reference:
                raise invalid(f"`{where}` must be an object with an `image`.")
            if reference.get("referenceType", "asset") not in ("asset", "style"):
                raise invalid(f"`{where}.referenceType` must be 'asset' or 'style'.")
            _image(reference["image"], f"{where}.image", vertex=vertex)
    if not (prompt or "").strip() and "image" not in instance:
        raise invalid("A `prompt` or an `image` is required.")
    return prompt or ""


def _image(value: object, where: str, *, vertex: bool) -> None:
    if not isinstance(value, dict):
        raise invalid(f"`{where}` must be an object.")
    if "gcsUri" in value:
        if not vertex:
            raise _unsupported("gcsUri", vertex)
        if not isinstance(value["gcsUri"], str) or not value["gcsUri"].startswith("gs://"):
            raise invalid(f"`{where}.gcsUri` must be a gs:// URI.")
    elif "bytesBase64Encoded" in value:
        data = value["bytesBase64Encoded"]
        if not isinstance(data, str) or not data:
            raise invalid(f"`{where}.bytesBase64Encoded` must be a base64 string.")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"`{where}.bytesBase64Encoded` is not valid base64.") from None
    else:
        raise invalid(
            f"`{where}` needs `bytesBase64Encoded`" + (" or `gcsUri`." if vertex else ".")
        )
    if value.get("mimeType") not in IMAGE_TYPES:
        raise invalid(f"`{where}.mimeType` must be one of {', '.join(IMAGE_TYPES)}.")


def _integer(value: object) -> int | None:
    """An integer given as a JSON number or a numeric string (protobuf Value accepts both)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _parameters(parameters: dict[str, Any], *, prompt: str, model: str, vertex: bool) -> Submission:
    for key in parameters:
        if key not in _COMMON_PARAMETERS and not (vertex and key in _VERTEX_PARAMETERS):
            raise _unsupported(key, vertex)
    ratio = parameters.get("aspectRatio", "16:9")
    if ratio not in ASPECT_RATIOS:
        raise invalid(f"Aspect ratio {ratio!r} is not supported. Use '16:9' or '9:16'.")
    seconds = _integer(parameters.get("durationSeconds", 8))
    if seconds is None or seconds not in DURATIONS:
        raise invalid(
            "The number value for `durationSeconds` is out of bound. Please provide a value "
            "of 4, 6 or 8."
        )
    resolution = parameters.get("resolution", "720p")
    if resolution not in RESOLUTIONS:
        raise invalid(f"Resolution {resolution!r} is not supported. Use 720p, 1080p or 4k.")
    if resolution == "4k" and "lite" in model:
        raise invalid(f"Resolution '4k' is not supported by {model}.")
    if resolution != "720p" and seconds != 8:
        raise invalid(f"Resolution {resolution!r} requires `durationSeconds` 8.")
    for name in ("negativePrompt",):
        if name in parameters and not isinstance(parameters[name], str):
            raise invalid(f"`{name}` must be a string.")
    person = parameters.get("personGeneration")
    if person is not None and person not in PERSON_GENERATION:
        raise invalid(f"`personGeneration` must be one of {', '.join(PERSON_GENERATION)}.")
    samples = _integer(parameters.get("sampleCount", 1))
    most = 4 if vertex else 1
    if samples is None or not 1 <= samples <= most:
        raise invalid(f"`sampleCount` must be between 1 and {most}.")
    for name in ("enhancePrompt", "generateAudio"):
        if name in parameters and not isinstance(parameters[name], bool):
            raise invalid(f"`{name}` must be a boolean.")
    if "seed" in parameters:
        seed = _integer(parameters["seed"])
        if seed is None or not 0 <= seed <= 4294967295:
            raise invalid("`seed` must be an integer between 0 and 4294967295.")
    storage = parameters.get("storageUri")
    if storage is not None and (not isinstance(storage, str) or not storage.startswith("gs://")):
        raise invalid("`storageUri` must be a gs:// URI.")
    return Submission(
        prompt=prompt,
        size=ASPECT_RATIOS[ratio],
        seconds=seconds,
        samples=samples,
        storage_uri=storage,
    )


def rfc3339(unix: float) -> str:
    """Google's timestamp form: ``2026-11-02T10:00:00.123456Z``."""
    return (
        datetime.fromtimestamp(unix, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def blocked(job: jobs.Job) -> bool:
    """Whether a failing job fails by the RAI filter (the ``[fail]`` trigger) rather than
    by an internal error."""
    return job.error is not None and job.error.code == "moderation_blocked"


def operation_body(
    operation: Operation,
    job: jobs.Job,
    now: float,
    *,
    download_base: str,
    video_b64: str | None = None,
) -> dict[str, Any]:
    """The operation as Google answers it: ``done`` is left out while running (proto3
    JSON omits false), then ``error`` or ``response``."""
    phase = jobs.phase(job, now)
    body: dict[str, Any] = {"name": operation.name}
    if not phase.terminal:
        return body
    body["done"] = True
    if phase.status == "failed" and not blocked(job):
        body["error"] = dict(INTERNAL_ERROR)
        return body
    if operation.vertex:
        response: dict[str, Any] = {"@type": VERTEX_RESPONSE_TYPE}
        if phase.status == "failed":
            response.update(raiMediaFilteredCount=1, raiMediaFilteredReasons=[RAI_REASON])
        else:
            response["raiMediaFilteredCount"] = 0
            response["videos"] = [
                _vertex_video(operation, index, video_b64) for index in range(operation.samples)
            ]
        body["response"] = response
        return body
    generated: dict[str, Any]
    if phase.status == "failed":
        generated = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [RAI_REASON]}
    else:
        generated = {
            "generatedSamples": [
                {"video": {"uri": f"{download_base}/files/{file_id}:download?alt=media"}}
                for file_id in operation.file_ids
            ]
        }
    body["response"] = {"@type": GEMINI_RESPONSE_TYPE, "generateVideoResponse": generated}
    return body


def _vertex_video(operation: Operation, index: int, video_b64: str | None) -> dict[str, Any]:
    if operation.storage_uri is not None:
        operation_id = operation.name.rpartition("/")[2]
        uri = f"{operation.storage_uri.rstrip('/')}/{operation_id}/sample_{index}.mp4"
        return {"gcsUri": uri, "mimeType": "video/mp4"}
    return {"bytesBase64Encoded": video_b64 or "", "mimeType": "video/mp4"}
