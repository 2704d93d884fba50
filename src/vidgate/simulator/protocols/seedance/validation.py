"""Reading ``POST /contents/generations/tasks`` and the list query the way Ark checks them.

Refusals use Ark's codes: ``MissingParameter`` / ``InvalidParameter`` (400) with the
field in ``param``, ``InvalidEndpointOrModel.NotFound`` (404) for a model the account
cannot call. Fields the simulator does not model (``frames``, ``priority``, ``tools``,
``output_format`` ...) are accepted and ignored, as Ark accepts what a model supports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import QueryParams

from vidgate.simulator.protocols.seedance import catalog, envelope

MAX_BODY_BYTES = 64 * 1024 * 1024  # base64 images ride in the body


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateParams:
    model: str
    prompt: str
    ratio: str
    resolution: str
    duration: int
    seed: int | None  # None: Ark draws one
    generate_audio: bool
    watermark: bool
    return_last_frame: bool
    draft: bool
    service_tier: str
    execution_expires_after: int
    callback_url: str | None
    safety_identifier: str | None
    images: tuple[tuple[str, str], ...]  # (role, url)


@dataclass(frozen=True, kw_only=True, slots=True)
class ListParams:
    page_num: int
    page_size: int
    status: str | None
    task_ids: tuple[str, ...]
    model: str | None
    service_tier: str | None


async def read_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise envelope.invalid("body", "the request body is too large")
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise envelope.invalid("body", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise envelope.invalid("body", "the request body must be a JSON object")
    return body


def create_params(body: Mapping[str, Any]) -> CreateParams:
    model = body.get("model")
    if model is None:
        raise envelope.missing("model")
    if not isinstance(model, str) or not model:
        raise envelope.invalid("model")
    spec = catalog.model_spec(model)
    if spec is None:
        raise envelope.unknown_model(model)
    prompt, images = _content(body.get("content"))
    ratio = _choice(body, "ratio", catalog.RATIOS, "adaptive" if images else catalog.DEFAULT_RATIO)
    resolution = _choice(body, "resolution", spec.resolutions, catalog.DEFAULT_RESOLUTION)
    duration = _integer(body, "duration", catalog.DEFAULT_DURATION)
    if duration == -1:
        duration = catalog.DEFAULT_DURATION
    elif not spec.min_duration <= duration <= spec.max_duration:
        raise envelope.invalid(
            "duration",
            f"it must be -1 or between {spec.min_duration} and {spec.max_duration} for {model}",
        )
    seed = _integer(body, "seed", -1)
    if not -1 <= seed <= catalog.MAX_SEED:
        raise envelope.invalid("seed", f"it must be between -1 and {catalog.MAX_SEED}")
    expires = _integer(body, "execution_expires_after", catalog.DEFAULT_EXECUTION_EXPIRES)
    if not catalog.MIN_EXECUTION_EXPIRES <= expires <= catalog.MAX_EXECUTION_EXPIRES:
        raise envelope.invalid(
            "execution_expires_after",
            f"it must be between {catalog.MIN_EXECUTION_EXPIRES} and "
            f"{catalog.MAX_EXECUTION_EXPIRES}",
        )
    safety = _optional_text(body, "safety_identifier")
    if safety is not None and len(safety) > catalog.MAX_SAFETY_IDENTIFIER:
        raise envelope.invalid("safety_identifier", "it must be at most 64 characters")
    callback = _optional_text(body, "callback_url")
    if callback is not None and not callback.startswith(("http://", "https://")):
        raise envelope.invalid("callback_url", "it must be an http(s) URL")
    return CreateParams(
        model=model,
        prompt=prompt,
        # "adaptive" lets the model pick from the images; the simulator picks 16:9.
        ratio=catalog.DEFAULT_RATIO if ratio == "adaptive" else ratio,
        resolution=resolution,
        duration=duration,
        seed=None if seed == -1 else seed,
        generate_audio=_flag(body, "generate_audio", True),
        watermark=_flag(body, "watermark", False),
        return_last_frame=_flag(body, "return_last_frame", False),
        draft=_flag(body, "draft", False),
        service_tier=_choice(body, "service_tier", catalog.SERVICE_TIERS, "default"),
        execution_expires_after=expires,
        callback_url=callback,
        safety_identifier=safety,
        images=images,
    )


def _content(content: object) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The prompt and the (role, url) images of ``content``, checked against Ark's rules:
    one text at most; first/last frames or reference images, never both; a last frame
    needs a first frame; audio needs an image or a video to go with it."""
    if content is None:
        raise envelope.missing("content")
    if not isinstance(content, list) or not content:
        raise envelope.invalid("content", "it must be a non-empty array")
    texts: list[str] = []
    images: list[tuple[str, str]] = []
    counts = {"video_url": 0, "audio_url": 0, "draft_task": 0}
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in catalog.CONTENT_TYPES:
            raise envelope.invalid("content.type", f"unsupported content type {kind!r}")
        assert isinstance(item, dict)
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise envelope.invalid("content.text", "it must be a string")
            texts.append(text)
        elif kind == "image_url":
            images.append(_image(item))
        else:
            counts[kind] += 1
            inner = item.get("draft_task" if kind == "draft_task" else kind)
            key = "id" if kind == "draft_task" else "url"
            if not isinstance(inner, dict) or not isinstance(inner.get(key), str):
                raise envelope.invalid(f"content.{kind}", f"it must be an object with a {key}")
    if len(texts) > 1:
        raise envelope.invalid("content", "at most one text item is allowed")
    roles = [role for role, _ in images]
    if "reference_image" in roles and ("first_frame" in roles or "last_frame" in roles):
        raise envelope.invalid(
            "content.role", "reference images cannot be combined with first or last frames"
        )
    if roles.count("first_frame") > 1 or roles.count("last_frame") > 1:
        raise envelope.invalid("content.role", "at most one first frame and one last frame")
    if "last_frame" in roles and "first_frame" not in roles:
        raise envelope.invalid("content.role", "a last frame needs a first frame")
    if roles.count("reference_image") > catalog.MAX_REFERENCE_IMAGES:
        raise envelope.invalid("content", "at most 9 reference images are allowed")
    if max(counts["video_url"], counts["audio_url"]) > catalog.MAX_REFERENCE_MEDIA:
        raise envelope.invalid("content", "at most 3 reference videos and 3 audio clips")
    if counts["audio_url"] and not (images or counts["video_url"]):
        raise envelope.invalid("content", "reference audio needs a reference image or video")
    if not texts and not images and not counts["video_url"] and not counts["draft_task"]:
        raise envelope.invalid("content", "a text prompt or an image is required")
    return (texts[0] if texts else ""), tuple(images)


def _image(item: dict[str, Any]) -> tuple[str, str]:
    inner = item.get("image_url")
    url = inner.get("url") if isinstance(inner, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise envelope.invalid("content.image_url.url", "it must be a URL or a base64 data URL")
    role = item.get("role", "first_frame")
    if role not in catalog.IMAGE_ROLES:
        raise envelope.invalid("content.role", f"unsupported image role {role!r}")
    return str(role), url


def _choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise envelope.invalid(name, f"supported values are {', '.join(allowed)}")
    return str(value)


def _integer(body: Mapping[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise envelope.invalid(name, "it must be an integer")
    return value


def _flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise envelope.invalid(name, "it must be a boolean")
    return value


def _optional_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise envelope.invalid(name, "it must be a string")
    return value


def list_params(query: QueryParams) -> ListParams:
    """``page_num``, ``page_size`` (1..500) and the ``filter.*`` parameters of the list."""
    status = query.get("filter.status")
    if status is not None and status not in catalog.STATUSES:
        raise envelope.invalid(
            "filter.status", f"supported values are {', '.join(catalog.STATUSES)}"
        )
    tier = query.get("filter.service_tier")
    if tier is not None and tier not in catalog.SERVICE_TIERS:
        raise envelope.invalid("filter.service_tier", "supported values are default, flex")
    return ListParams(
        page_num=_page(query.get("page_num"), "page_num", 1),
        page_size=_page(query.get("page_size"), "page_size", catalog.DEFAULT_PAGE_SIZE),
        status=status,
        task_ids=tuple(query.getlist("filter.task_ids")),
        model=query.get("filter.model"),
        service_tier=tier,
    )


def _page(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= catalog.MAX_PAGE:
        raise envelope.invalid(name, f"it must be an integer between 1 and {catalog.MAX_PAGE}")
    return int(raw)
