"""Hostile answers: `GET /videos/{id}` answered 200 with a corrupted job object.

A hostile answer replaces what the client sees once; the job itself is untouched, so the next
normal answer tells the truth again and a client that shrugs the bad one off still finishes.
Each hostile answer is one variant, dealt from a shuffled deck (so a few dozen hostile answers
cover every variant) among those that apply:

    missingStatus / missingProgress / missingId     the key is absent
    progressNotANumber ("abc") / statusNotAString (5) / idNotAString (123)
    unknownStatus                                   "rendering"
    progressAbove100 (150) / progressBelow0 (-5)
    progressBackwards                               below the last progress truly answered
                                                    for this job (only once that is above 0)
    completedWithoutUrl                             "completed", 100, no url (only with
                                                    url_field, whose completed jobs carry one)
    hugeBody                                        the true object padded to about 2 MB
    notJson                                         200, JSON content type, HTML body
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

from fastapi.responses import Response

GARBAGE_BODY = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
HUGE_PADDING_BYTES = 2 * 1024 * 1024

MISSING_STATUS = "missingStatus"
MISSING_PROGRESS = "missingProgress"
MISSING_ID = "missingId"
PROGRESS_NOT_A_NUMBER = "progressNotANumber"
STATUS_NOT_A_STRING = "statusNotAString"
ID_NOT_A_STRING = "idNotAString"
UNKNOWN_STATUS = "unknownStatus"
PROGRESS_ABOVE_100 = "progressAbove100"
PROGRESS_BELOW_0 = "progressBelow0"
PROGRESS_BACKWARDS = "progressBackwards"
COMPLETED_WITHOUT_URL = "completedWithoutUrl"
HUGE_BODY = "hugeBody"
NOT_JSON = "notJson"

VARIANTS = (
    MISSING_STATUS,
    MISSING_PROGRESS,
    MISSING_ID,
    PROGRESS_NOT_A_NUMBER,
    STATUS_NOT_A_STRING,
    ID_NOT_A_STRING,
    UNKNOWN_STATUS,
    PROGRESS_ABOVE_100,
    PROGRESS_BELOW_0,
    PROGRESS_BACKWARDS,
    COMPLETED_WITHOUT_URL,
    HUGE_BODY,
    NOT_JSON,
)

UNKNOWN_STATUS_WORD = "rendering"

_REPLACED: dict[str, tuple[str, object]] = {
    PROGRESS_NOT_A_NUMBER: ("progress", "abc"),
    STATUS_NOT_A_STRING: ("status", 5),
    ID_NOT_A_STRING: ("id", 123),
    UNKNOWN_STATUS: ("status", UNKNOWN_STATUS_WORD),
    PROGRESS_ABOVE_100: ("progress", 150),
    PROGRESS_BELOW_0: ("progress", -5),
}
_DROPPED = {MISSING_STATUS: "status", MISSING_PROGRESS: "progress", MISSING_ID: "id"}


def applicable(*, last_progress: int, url_field: bool) -> list[str]:
    """The variants that make sense for a job whose last truly answered progress is given."""
    return [
        variant
        for variant in VARIANTS
        if (variant != PROGRESS_BACKWARDS or last_progress > 0)
        and (variant != COMPLETED_WITHOUT_URL or url_field)
    ]


class Deck:
    """Variants in a seeded random order, each dealt once per round. A variant that does not
    apply when its turn comes stays at the front and is dealt as soon as it does."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._cards: list[str] = []

    def deal(self, *, last_progress: int, url_field: bool) -> str:
        allowed = applicable(last_progress=last_progress, url_field=url_field)
        while True:
            for index, card in enumerate(self._cards):
                if card in allowed:
                    return self._cards.pop(index)
            fresh = [variant for variant in VARIANTS if variant not in self._cards]
            self._rng.shuffle(fresh)
            self._cards.extend(fresh)


def corrupt(variant: str, body: Mapping[str, Any], *, last_progress: int, now: float) -> Any:
    """The JSON value sent instead of the true `body` (not used for notJson)."""
    corrupted = dict(body)
    if variant in _DROPPED:
        del corrupted[_DROPPED[variant]]
    elif variant in _REPLACED:
        field, value = _REPLACED[variant]
        corrupted[field] = value
    elif variant == PROGRESS_BACKWARDS:
        corrupted["progress"] = last_progress // 2
    elif variant == COMPLETED_WITHOUT_URL:
        corrupted.pop("url", None)
        corrupted.update(status="completed", progress=100, error=None)
        if corrupted.get("completed_at") is None:
            corrupted["completed_at"] = int(now)
        if corrupted.get("expires_at") is None:
            corrupted["expires_at"] = int(now) + 3600
    elif variant == HUGE_BODY:
        corrupted["padding"] = "x" * HUGE_PADDING_BYTES
    else:
        raise ValueError(f"unknown hostile variant {variant!r}")
    return corrupted


def response(
    variant: str,
    body: Mapping[str, Any],
    *,
    last_progress: int,
    now: float,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A 200 that claims JSON, as the true answer would, but carries the variant."""
    if variant == NOT_JSON:
        content = GARBAGE_BODY
    else:
        value = corrupt(variant, body, last_progress=last_progress, now=now)
        content = json.dumps(value, separators=(",", ":")).encode()
    return Response(
        content, status_code=200, media_type="application/json", headers=dict(headers or {})
    )
