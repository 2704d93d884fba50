"""What the simulator watches its clients do: requests sent before a `Retry-After` expired,
and several requests for the same job in flight at once.

Both are tied to a request's key: the job id for `GET` and `DELETE /videos/{id}`, the
`Idempotency-Key` header for `POST /videos` (a create without one has no key and is not
watched). An answer carrying `Retry-After` (injected 429s, and 503s when configured) holds its
key off until `now + wait`; a later request with that key arriving more than
`TOLERANCE_SECONDS` early is a violation. A request arriving while another one with its key is
still being answered (latency or a hang makes that window wide) is an overlapping request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from vidgate.simulator.stats import Stats

TOLERANCE_SECONDS = 0.05
# Expired hold-offs are forgotten once this many keys are remembered.
_PRUNE_ABOVE = 4096

_BY_JOB_ID = frozenset({"GET /videos/{video_id}", "DELETE /videos/{video_id}"})
_BY_IDEMPOTENCY_KEY = frozenset({"POST /videos"})


def key_of(route: str, path_params: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The key a request is watched under, or None when it has none."""
    if route in _BY_JOB_ID:
        return path_params.get("video_id")
    if route in _BY_IDEMPOTENCY_KEY:
        key = headers.get("idempotency-key")
        return key or None
    return None


class Tracker:
    """Per-key state; the counters themselves live in `Stats` (reset with the others)."""

    def __init__(self) -> None:
        self._not_before: dict[str, float] = {}
        self._in_flight: Counter[str] = Counter()

    def arrive(self, key: str | None, route: str, now: float, stats: Stats) -> None:
        """A request with `key` arrived at `now`; count what it breaks."""
        if key is None:
            return
        not_before = self._not_before.get(key)
        if not_before is not None and now < not_before - TOLERANCE_SECONDS:
            stats.count_retry_after_violation(key, route, early_by=not_before - now)
        if self._in_flight[key] > 0:
            stats.count_overlap(key, route)
        self._in_flight[key] += 1

    def leave(self, key: str | None) -> None:
        """The request with `key` has been answered (or its client went away)."""
        if key is None:
            return
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]

    def hold_off(self, key: str | None, until: float, now: float) -> None:
        """An answer told the client not to come back with `key` before `until`."""
        if key is None:
            return
        if len(self._not_before) > _PRUNE_ABOVE:
            self._not_before = {k: t for k, t in self._not_before.items() if t > now}
        self._not_before[key] = until  # the latest answer is the one to obey

    def in_flight(self, key: str) -> int:
        return self._in_flight[key]
