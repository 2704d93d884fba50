"""Ark's task objects read: their usage, when a signed result URL lapses, and a listed
task as a summary."""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vidgate.providers.base import UpstreamJobSummary, Usage
from vidgate.providers.http import unix_seconds
from vidgate.providers.seedance.catalogue import is_int


def usage_of(data: Mapping[str, Any]) -> Usage | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    total, completion = usage.get("total_tokens"), usage.get("completion_tokens")
    tokens = total if is_int(total) else completion if is_int(completion) else None
    duration = data.get("duration")
    resolution = data.get("resolution")
    seconds = (
        float(duration)
        if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0
        else None
    )
    return Usage(
        tokens=tokens,
        seconds=seconds,
        resolution=resolution if isinstance(resolution, str) else None,
    )


def signed_expiry(url: str) -> float | None:
    """When a pre-signed URL lapses, from its own query (TOS or S3 style), if it says."""
    query = parse_qs(urlsplit(url).query)
    for prefix in ("X-Tos-", "X-Amz-"):
        dates, lifetimes = query.get(prefix + "Date"), query.get(prefix + "Expires")
        if not dates or not lifetimes or not lifetimes[0].isdigit():
            continue
        try:
            signed = calendar.timegm(time.strptime(dates[0], "%Y%m%dT%H%M%SZ"))
        except ValueError:
            continue
        return float(signed + int(lifetimes[0]))
    return None


def summary_of(item: object) -> UpstreamJobSummary | None:
    """One listed task, for recognising an interrupted submission. Ark's task objects do
    not repeat the prompt, and their duration and size are what Ark chose when the request
    left them unset: only the model and the creation time are given, since a field that
    differs from the request would wrongly rule our own task out."""
    if not isinstance(item, dict):
        return None
    task_id = item.get("id")
    if not isinstance(task_id, str) or not task_id:
        return None
    model = item.get("model")
    return UpstreamJobSummary(
        external_id=task_id,
        prompt=None,
        model=model if isinstance(model, str) else None,
        seconds=None,
        size=None,
        created_at=unix_seconds(item.get("created_at")),
    )
