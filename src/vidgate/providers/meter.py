"""The providers' metering port: every upstream request, told to whoever listens.

``HttpUpstream.call`` reports each request it makes with ``record``: the provider, the
method, a bounded route template of the path, the outcome and the time taken. The
process's metrics (``vidgate.metrics``) ``install`` themselves as the listener; with
none installed (tests, ``VIDGATE_METRICS=false``) a report costs one comparison.

The listener is per process, like the connection pools the requests go through: adapters
build their ``HttpUpstream`` deep inside the provider registry, out of reach of any wiring.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

# A path segment that names a resource rather than one of its instances: a short
# lowercase word with at most two digits (``videos``, ``v1beta``, ``text2video``,
# ``video_generation``). Anything else (ids, UUIDs, model names with dots, numbers)
# becomes ``{id}``, so an upstream's routes give a handful of label values however many
# jobs it runs. (``vidgate.metrics`` also caps the routes it keeps per provider.)
_WORD = re.compile(r"[a-z][a-z0-9_]{0,23}")
MAX_DIGITS = 2
_VERB = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")  # Google's ``name:predictLongRunning``
MAX_SEGMENTS = 4


class UpstreamMeter(Protocol):
    def upstream_request(
        self, *, provider: str, method: str, route: str, outcome: str, seconds: float
    ) -> None:
        """One request to ``provider`` ended with ``outcome``: a status class (``2xx``,
        ``4xx``, ``5xx``; ``429`` on its own) or the kind of failure (``connect_error``,
        ``timeout``, ``transport_error``, ``encode_error``)."""
        ...


_listener: UpstreamMeter | None = None


def install(meter: UpstreamMeter) -> Callable[[], None]:
    """Send every report to ``meter`` from now on; returns a function that stops it."""
    global _listener
    _listener = meter

    def uninstall() -> None:
        global _listener
        if _listener is meter:
            _listener = None

    return uninstall


def record(provider: str, method: str, path: str, outcome: int | str, started: float) -> None:
    """Report a request sent at ``started`` (``time.perf_counter()``) to ``path`` (relative
    to the provider's base URL, or absolute); ``outcome`` is the HTTP status or a failure
    kind."""
    listener = _listener
    if listener is None:
        return
    listener.upstream_request(
        provider=provider,
        method=method.upper(),
        route=route_template(path),
        outcome=outcome_class(outcome) if isinstance(outcome, int) else outcome,
        seconds=time.perf_counter() - started,
    )


def outcome_class(status: int) -> str:
    """``2xx``, ``3xx``, ``4xx``, ``5xx``; ``429`` apart, as rate limiting is its own story."""
    if status == 429:
        return "429"
    return f"{min(max(status // 100, 1), 5)}xx"


def route_template(path: str) -> str:
    """``/videos/video_68d7...`` -> ``/videos/{id}``; ``/v1/videos/text2video/8123`` ->
    ``/v1/videos/text2video/{id}``; ``/models/veo-3.1:predictLongRunning`` ->
    ``/models/{id}:predictLongRunning``. At most ``MAX_SEGMENTS`` segments are kept."""
    if "://" in path:
        path = urlsplit(path).path
    path = path.split("?", 1)[0]
    segments = [s for s in path.split("/") if s]
    shown = [_segment(s) for s in segments[:MAX_SEGMENTS]]
    if len(segments) > MAX_SEGMENTS:
        shown.append("...")
    return "/" + "/".join(shown)


def _segment(segment: str) -> str:
    name, colon, verb = segment.partition(":")
    digits = sum(c.isdigit() for c in name)
    word = name if digits <= MAX_DIGITS and _WORD.fullmatch(name) else "{id}"
    if not colon:
        return word
    return f"{word}:{verb}" if _VERB.fullmatch(verb) else f"{word}:{{id}}"
