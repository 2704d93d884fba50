"""Bytes in and out of Veo: images fetched to be sent inline, and inline (base64) Vertex
videos served as a download with Range."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from vidgate import netguard
from vidgate.domain.errors import ValidationFailed
from vidgate.providers.base import ContentStream, UpstreamProtocolError, UpstreamUnavailable
from vidgate.providers.veo.wire import rejected

MAX_IMAGE_BYTES = 20 << 20
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
CHUNK_BYTES = 64 * 1024


async def fetch_image(
    client: httpx.AsyncClient, url: str, *, name: str, allow_private: bool
) -> dict[str, str]:
    """An image URL as Veo takes it, ``{"bytesBase64Encoded", "mimeType"}``.

    Fetched without credentials and without following redirects; the address is checked
    again (netguard) because a name can resolve elsewhere than when the task was
    accepted. Only the host appears in messages: a signed URL's query is a secret.
    """
    host = urlsplit(url).hostname or "?"
    try:
        await netguard.check_reference_url(url, allow_private=allow_private)
    except ValidationFailed as exc:
        raise rejected(f"{name}: {exc.message}", "invalid_image_url") from exc
    try:
        async with client.stream("GET", url, headers={"Accept": ", ".join(IMAGE_TYPES)}) as got:
            if got.status_code >= 500:
                raise UpstreamUnavailable(
                    f"{name}: the image host {host} answered {got.status_code}",
                    maybe_received=False,
                )
            if got.status_code != 200:
                raise rejected(
                    f"{name}: the image at {host} answered {got.status_code}", "image_unavailable"
                )
            mime = got.headers.get("content-type", "").split(";")[0].strip().lower()
            if mime not in IMAGE_TYPES:
                raise rejected(
                    f"{name}: the image at {host} is {mime or 'untyped'}, "
                    f"not one of {', '.join(IMAGE_TYPES)}",
                    "invalid_image",
                )
            data = bytearray()
            async for chunk in got.aiter_bytes():
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise rejected(
                        f"{name}: the image at {host} is larger than {MAX_IMAGE_BYTES >> 20} MiB",
                        "invalid_image",
                    )
    except httpx.HTTPError as exc:
        # Nothing has been sent to Veo yet: safe to try again.
        raise UpstreamUnavailable(
            f"{name}: the image at {host} could not be fetched ({type(exc).__name__})",
            maybe_received=False,
        ) from exc
    return {"bytesBase64Encoded": base64.b64encode(data).decode("ascii"), "mimeType": mime}


def inline_stream(encoded: str, range_header: str | None) -> ContentStream:
    """An inline (base64) Vertex video served like a download, honouring one Range."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UpstreamProtocolError("inline video is not valid base64") from exc
    total = len(data)
    headers = {"content-type": "video/mp4", "accept-ranges": "bytes"}
    status = 200
    span = byte_range(range_header, total)
    if span is not None:
        first, last = span
        data = data[first : last + 1]
        status = 206
        headers["content-range"] = f"bytes {first}-{last}/{total}"
    headers["content-length"] = str(len(data))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), CHUNK_BYTES):
            yield data[start : start + CHUNK_BYTES]

    async def close() -> None:
        return None

    return ContentStream(status=status, headers=headers, chunks=chunks(), close=close)


def byte_range(header: str | None, total: int) -> tuple[int, int] | None:
    """``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` within ``total``; None: send it all
    (a full 200 is a valid answer to any range we do not serve)."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if match is None or total == 0:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text or int(last_text) == 0:
            return None
        return max(0, total - int(last_text)), total - 1
    first = int(first_text)
    last = min(int(last_text), total - 1) if last_text else total - 1
    if first >= total or last < first:
        return None
    return first, last
