"""Veo's wire vocabulary: model catalogues, capability tables, the ``extra`` keys each
surface takes, operation names, and the reading of Google's error envelope and of an
operation's ``error``."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageRole
from vidgate.providers.base import ErrorCategory, JobError, UpstreamRejected

# Client model -> upstream id, when the provider's config names none.
DEFAULT_MODELS = {
    "veo-3.1": "veo-3.1-generate-preview",
    "veo-3.1-fast": "veo-3.1-fast-generate-preview",
    "veo-3.1-lite": "veo-3.1-lite-generate-preview",
    "veo-3.1-generate-preview": "veo-3.1-generate-preview",
    "veo-3.1-fast-generate-preview": "veo-3.1-fast-generate-preview",
    "veo-3.1-lite-generate-preview": "veo-3.1-lite-generate-preview",
}
# Vertex's GA ids (PROTOCOLS.md 1.1); the preview ids work there too.
VERTEX_DEFAULT_MODELS = {
    "veo-3.1": "veo-3.1-generate-001",
    "veo-3.1-fast": "veo-3.1-fast-generate-001",
    "veo-3.1-generate-001": "veo-3.1-generate-001",
    "veo-3.1-fast-generate-001": "veo-3.1-fast-generate-001",
    "veo-3.1-generate-preview": "veo-3.1-generate-preview",
    "veo-3.1-fast-generate-preview": "veo-3.1-fast-generate-preview",
}

GEMINI_HOST = "generativelanguage.googleapis.com"
STORAGE_HOST = "storage.googleapis.com"

_ROLES_ALL = (ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME, ImageRole.REFERENCE)
_VEO_31: dict[str, Any] = {
    "durations": (4.0, 6.0, 8.0),
    "aspect_ratios": ("16:9", "9:16"),
    "resolutions": ("720p", "1080p", "4k"),
    "image_roles": _ROLES_ALL,
    "max_images": 3,
    "audio": True,
    "negative_prompt": True,
}
_CAPABILITIES: dict[str, dict[str, Any]] = {
    "veo-3.1-generate-preview": _VEO_31,
    "veo-3.1-fast-generate-preview": _VEO_31,
    "veo-3.1-generate-001": _VEO_31,
    "veo-3.1-fast-generate-001": _VEO_31,
    "veo-3.1-lite-generate-preview": {
        **_VEO_31,
        "resolutions": ("720p", "1080p"),
        "image_roles": (ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME),
        "max_images": 2,
    },
}
# Above 720p, Veo 3.1 only makes 8-second clips.
FULL_LENGTH_ONLY = ("1080p", "4k")


def known_model(upstream_model: str) -> bool:
    return upstream_model in _CAPABILITIES


def capabilities(upstream_model: str, *, vertex: bool) -> Capabilities:
    """The built-in table; the Gemini API takes no seed (the official SDK refuses one
    outside Vertex mode)."""
    known = _CAPABILITIES.get(upstream_model)
    if known is None:
        # A newer Veo under a name we do not know: let the upstream judge.
        return Capabilities(image_roles=_ROLES_ALL, audio=True, seed=vertex)
    return Capabilities(**known, seed=vertex)


# `extra` keys each surface takes (into `parameters`), with their JSON type; the
# official SDK refuses the Vertex-only ones in Gemini mode.
_EXTRA_TYPES: dict[str, type] = {
    "personGeneration": str,
    "sampleCount": int,
    "enhancePrompt": bool,
}
_VERTEX_EXTRA_TYPES: dict[str, type] = {
    **_EXTRA_TYPES,
    "storageUri": str,
    "compressionQuality": str,
    "resizeMode": str,
    "fps": int,
}
_EXTRA_CHOICES = {
    "personGeneration": ("allow_all", "allow_adult", "dont_allow"),
    "compressionQuality": ("optimized", "lossless"),
    "resizeMode": ("pad", "crop"),
}
# Set from the neutral request; `extra` may not override them.
_NEUTRAL_KEYS = frozenset(
    {
        "aspectRatio",
        "durationSeconds",
        "resolution",
        "negativePrompt",
        "seed",
        "generateAudio",
        "prompt",
        "image",
        "lastFrame",
        "referenceImages",
    }
)


def rejected(message: str, code: str = "invalid_request") -> UpstreamRejected:
    """A request Veo cannot take, refused before anything is sent."""
    return UpstreamRejected(message, status=400, code=code, category=ErrorCategory.INVALID_REQUEST)


def checked_extra(extra: Mapping[str, Any], *, vertex: bool, name: str) -> dict[str, Any]:
    """``params.extra`` checked key by key: an unknown, neutral or mistyped key is
    refused (``invalid_extra``)."""
    allowed = _VERTEX_EXTRA_TYPES if vertex else _EXTRA_TYPES
    for key, value in extra.items():
        if key in _NEUTRAL_KEYS:
            raise rejected(
                f"{name}: extra may not set {key}: use the request's own field", "invalid_extra"
            )
        expected = allowed.get(key)
        if expected is None:
            raise rejected(
                f"{name}: extra key {key!r} is not a Veo parameter here; "
                f"allowed: {', '.join(sorted(allowed))}",
                "invalid_extra",
            )
        # bool is an int to Python, not to JSON.
        if isinstance(value, bool) is not (expected is bool) or not isinstance(value, expected):
            raise rejected(f"{name}: extra {key} must be a {expected.__name__}", "invalid_extra")
        choices = _EXTRA_CHOICES.get(key)
        if choices is not None and value not in choices:
            raise rejected(
                f"{name}: extra {key} must be one of {', '.join(choices)}", "invalid_extra"
            )
        if key == "storageUri" and not str(value).startswith("gs://"):
            raise rejected(f"{name}: extra storageUri must be a gs:// URI", "invalid_extra")
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise rejected(f"{name}: extra {key} must be positive", "invalid_extra")
    return dict(extra)


_SAFE = r"[A-Za-z0-9._-]+"
GEMINI_NAME = re.compile(rf"^models/{_SAFE}/operations/{_SAFE}$")
VERTEX_NAME = re.compile(
    rf"^projects/{_SAFE}/locations/{_SAFE}/publishers/google/models/{_SAFE}/operations/{_SAFE}$"
)
MODEL_ID = re.compile(rf"^{_SAFE}$")
_RETRY_DELAY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)s\s*$")

# google.rpc.Code, as numbered in an operation's `error.code`.
_RPC_CODES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}
_POLICY_WORDS = (
    "responsible ai",
    "sensitive",
    "safety",
    "policy",
    "policies",
    "usage guidelines",
    "violate",
    "prohibited",
)


def about_policy(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _POLICY_WORDS)


def error_of(body: object) -> tuple[str | None, str | None, str | None, float | None]:
    """Google's envelope: the message, the status word, the ``ErrorInfo`` reason and the
    ``RetryInfo`` delay (seconds), each None when absent."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None, None, None
    message = error.get("message")
    word = error.get("status")
    reason = wait = None
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo") and isinstance(detail.get("reason"), str):
            reason = detail["reason"]
        elif kind.endswith("google.rpc.RetryInfo"):
            match = _RETRY_DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                wait = float(match.group(1))
    return (
        message if isinstance(message, str) else None,
        word if isinstance(word, str) else None,
        reason,
        wait,
    )


def job_error(error: Mapping[str, Any]) -> JobError:
    """An operation's ``error`` (a ``google.rpc.Status``) in neutral terms; its code is
    the status word (``INTERNAL``), the number when the word is unknown."""
    number = error.get("code")
    word = _RPC_CODES.get(number, str(number)) if isinstance(number, int) else "UNKNOWN"
    message = error.get("message")
    text = message.strip()[:500] if isinstance(message, str) and message.strip() else ""
    lowered = text.lower()
    if about_policy(text):
        category = ErrorCategory.CONTENT_POLICY
    elif word == "INVALID_ARGUMENT":
        category = ErrorCategory.INVALID_REQUEST
    elif word == "RESOURCE_EXHAUSTED":
        category = ErrorCategory.RATE_LIMITED
    elif word == "FAILED_PRECONDITION" and "billing" in lowered:
        category = ErrorCategory.INSUFFICIENT_CREDITS
    elif word in ("PERMISSION_DENIED", "UNAUTHENTICATED", "UNAVAILABLE", "CANCELLED"):
        category = ErrorCategory.PROVIDER_UNAVAILABLE
    else:
        category = ErrorCategory.GENERATION_FAILED
    return JobError(code=word, message=text or "The Veo operation failed.", category=category)


def filtered(generated: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether the RAI filter withheld videos (``raiMediaFilteredCount``), and why."""
    count = generated.get("raiMediaFilteredCount")
    reasons = generated.get("raiMediaFilteredReasons")
    listed = [r for r in reasons if isinstance(r, str)] if isinstance(reasons, list) else []
    counted = isinstance(count, int) and not isinstance(count, bool) and count > 0
    return counted or bool(listed), listed


def gcs_download_url(uri: str) -> str | None:
    """``gs://bucket/path`` as Cloud Storage's authenticated media download URL."""
    if not uri.startswith("gs://"):
        return None
    bucket, _, path = uri[len("gs://") :].partition("/")
    if not bucket or not path:
        return None
    return (
        f"https://{STORAGE_HOST}/download/storage/v1/b/{quote(bucket, safe='')}"
        f"/o/{quote(path, safe='')}?alt=media"
    )


def parse_time(value: object) -> float | None:
    """An RFC 3339 timestamp (``2026-11-02T10:00:00.123456789Z``) as unix seconds."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    # fromisoformat takes at most microseconds: Google may send nanoseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    stamp = parsed.timestamp()
    return stamp if math.isfinite(stamp) else None
