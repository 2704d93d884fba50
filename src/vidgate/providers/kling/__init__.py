"""Adapter for Kling's video API (``kind = "kling"``, PROTOCOLS.md §1.4).

Kling wants a short-lived JWT on every request (HS256 over the access key, signed with the
secret key), answers in a ``{code, message, request_id, data}`` envelope and tells errors
by a service code beside the HTTP status. Codes matter more than statuses: 1302 is a rate
limit but 1303 means too many tasks running, and 1100-1102 arrive as 429 too although they
mean the account is out of units. A task has no progress figure; its result URLs are
public and cleaned up after 30 days. The attempt's key goes out as ``external_task_id``,
which the query route accepts in place of the task id: a crashed submission is found again
by asking for it (``find_by_client_id``).
"""

from __future__ import annotations

from vidgate.providers.kling.adapter import RESULT_LIFETIME, KlingProvider
from vidgate.providers.kling.auth import TOKEN_LIFETIME, TOKEN_NOT_BEFORE, TOKEN_RENEW_BEFORE
from vidgate.providers.kling.catalogue import (
    DEFAULT_MODELS,
    FAMILIES,
    IMAGE2VIDEO,
    MODELS,
    TEXT2VIDEO,
)

__all__ = [
    "DEFAULT_MODELS",
    "FAMILIES",
    "IMAGE2VIDEO",
    "MODELS",
    "RESULT_LIFETIME",
    "TEXT2VIDEO",
    "TOKEN_LIFETIME",
    "TOKEN_NOT_BEFORE",
    "TOKEN_RENEW_BEFORE",
    "KlingProvider",
]
