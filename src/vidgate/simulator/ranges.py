"""Serving in-memory bytes with HTTP Range support (a browser's <video> insists on 206)."""

from __future__ import annotations

import re

from fastapi.responses import Response

_SINGLE_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def byte_range(header: str | None, total: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a satisfiable single range; None to send everything.

    Multi-range and malformed headers are ignored (a full 200 is a valid answer to both);
    an unsatisfiable range raises ValueError.
    """
    if header is None:
        return None
    match = _SINGLE_RANGE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # "bytes=-500": the final 500 bytes
        suffix = int(last_text)
        if suffix == 0:
            raise ValueError("empty suffix range")
        return max(0, total - suffix), total - 1
    first = int(first_text)
    last = min(int(last_text), total - 1) if last_text else total - 1
    if first >= total or last < first:
        raise ValueError("range not satisfiable")
    return first, last


def bytes_response(body: bytes, media_type: str, range_header: str | None) -> Response:
    headers = {"accept-ranges": "bytes"}
    try:
        wanted = byte_range(range_header, len(body))
    except ValueError:
        headers["content-range"] = f"bytes */{len(body)}"
        return Response(status_code=416, headers=headers)
    if wanted is None:
        return Response(body, media_type=media_type, headers=headers)
    first, last = wanted
    headers["content-range"] = f"bytes {first}-{last}/{len(body)}"
    return Response(body[first : last + 1], status_code=206, media_type=media_type, headers=headers)
