"""Request parsing and validation, with the messages and params the real API uses.

Bodies arrive as JSON or multipart (the official SDK always sends multipart, flattening objects
into bracketed field names such as `input_reference[image_url]`); both become one nested dict
before validation, so the rules live in one place. Unknown fields are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from vidgate.simulator import errors

MODELS = (
    "sora-2",
    "sora-2-pro",
    "sora-2-2025-10-06",
    "sora-2-pro-2025-10-06",
    "sora-2-2025-12-08",
)
SECONDS = ("4", "8", "12")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
# UPSTREAM.md: the pro models also render full HD; the spec's enum predates that.
PRO_SIZES = (*SIZES, "1920x1080", "1080x1920")
VARIANTS = ("video", "thumbnail", "spritesheet")
ORDERS = ("asc", "desc")

DEFAULT_MODEL = "sora-2"
DEFAULT_SECONDS = "4"
DEFAULT_SIZE = "720x1280"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_PROMPT_CHARS = 32000
# A base64 data URL in `input_reference[image_url]` may be up to 20 MiB per the spec.
MAX_FIELD_BYTES = 21 * 1024 * 1024

_BRACKETED = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")
# Object fields a multipart client may also send as one JSON-encoded text part.
_JSON_OBJECT_FIELDS = ("input_reference",)


@dataclass(frozen=True, kw_only=True, slots=True)
class UploadedFile:
    """What we keep of an uploaded file: the simulator never looks inside it."""

    filename: str | None
    content_type: str | None
    size: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateParams:
    prompt: str
    model: str
    seconds: str
    size: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ListParams:
    after: str | None
    limit: int
    descending: bool


async def read_body(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async with request.form(max_part_size=MAX_FIELD_BYTES) as form:
            fields = nest_fields(
                (key, _keep(value) if isinstance(value, UploadFile) else value)
                for key, value in form.multi_items()
            )
        for name in _JSON_OBJECT_FIELDS:
            if name in fields:
                fields[name] = _decoded_object(fields[name])
        return fields
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise errors.SimError(400, errors.MALFORMED_JSON_MESSAGE) from None
    if not isinstance(body, dict):
        raise errors.SimError(
            400,
            f"Invalid type for body: expected an object, but got {errors.json_type_name(body)} "
            "instead.",
        )
    return body


def _decoded_object(value: Any) -> Any:
    """'{"image_url": ".."}' -> {"image_url": ".."}; anything else unchanged."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, dict) else value
    return value


def _keep(upload: UploadFile) -> UploadedFile:
    return UploadedFile(
        filename=upload.filename, content_type=upload.content_type, size=upload.size
    )


def nest_fields(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """[("input_reference[image_url]", "https://..")] -> {"input_reference": {"image_url": ..}}.

    "a[]" appends to a list; when a plain and a bracketed field collide, the later one wins.
    """
    result: dict[str, Any] = {}
    for key, value in items:
        match = _BRACKETED.match(key)
        if match is None:
            result[key] = value
            continue
        *parents, last = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = result
        for part in parents[:-1]:
            node = _child_dict(node, part)
        if last == "":
            values = node.get(parents[-1])
            if not isinstance(values, list):
                values = node[parents[-1]] = []
            values.append(value)
        else:
            _child_dict(node, parents[-1])[last] = value
    return result


def _child_dict(node: dict[str, Any], key: str) -> dict[str, Any]:
    child = node.get(key)
    if not isinstance(child, dict):
        child = node[key] = {}
    return child


def create_params(body: Mapping[str, Any]) -> CreateParams:
    prompt = prompt_param(body)
    model = _choice(body, "model", DEFAULT_MODEL, MODELS)
    seconds = _choice(body, "seconds", DEFAULT_SECONDS, SECONDS)
    size = _choice(body, "size", DEFAULT_SIZE, PRO_SIZES if "-pro" in model else SIZES)
    reference = body.get("input_reference", {})
    if not isinstance(reference, UploadedFile | dict):
        raise errors.invalid_type("input_reference", "an object or a file", reference)
    return CreateParams(prompt=prompt, model=model, seconds=seconds, size=size)


def prompt_param(body: Mapping[str, Any]) -> str:
    if "prompt" not in body:
        raise errors.missing("prompt")
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        raise errors.invalid_type("prompt", "a string", prompt)
    if len(prompt) < 1:
        raise errors.SimError(
            400,
            "Invalid 'prompt': string too short. Expected a string with minimum length 1, "
            "but got an empty string instead.",
            param="prompt",
            code="string_below_min_length",
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise errors.SimError(
            400,
            f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{MAX_PROMPT_CHARS}, but got a string with length {len(prompt)} instead.",
            param="prompt",
            code="string_above_max_length",
        )
    return prompt


def _choice(body: Mapping[str, Any], name: str, default: str, supported: tuple[str, ...]) -> str:
    if name not in body:
        return default
    value = body[name]
    if not isinstance(value, str):
        raise errors.invalid_type(name, "a string", value)
    if value not in supported:
        raise errors.invalid_value(name, value, supported)
    return value


def list_params(after: str | None, limit: str | None, order: str | None) -> ListParams:
    count = DEFAULT_LIMIT
    if limit is not None:
        try:
            count = int(limit)
        except ValueError:
            raise errors.invalid_type("limit", "an integer", limit) from None
        # The spec's minimum is 0 (an empty page), not 1.
        if count < 0:
            raise errors.SimError(
                400,
                f"Invalid 'limit': integer below minimum value. Expected a value >= 0, "
                f"but got {count} instead.",
                param="limit",
                code="integer_below_min_value",
            )
        if count > MAX_LIMIT:
            raise errors.SimError(
                400,
                f"Invalid 'limit': integer above maximum value. Expected a value <= {MAX_LIMIT}, "
                f"but got {count} instead.",
                param="limit",
                code="integer_above_max_value",
            )
    if order is not None and order not in ORDERS:
        raise errors.invalid_value("order", order, ORDERS)
    return ListParams(after=after or None, limit=count, descending=order != "asc")


def variant_param(variant: str | None) -> str:
    if variant is None:
        return "video"
    if variant not in VARIANTS:
        raise errors.invalid_value("variant", variant, VARIANTS)
    return variant
