"""Adapter for ByteDance Seedance on Volcengine Ark / BytePlus ModelArk (PROTOCOLS.md §1.9).

``POST {base}/contents/generations/tasks`` with a ``content`` array (the prompt as a
``text`` item, images as ``image_url`` items with a role) creates a task and answers
``{id}``; ``GET .../tasks/{id}`` reads it, ``GET .../tasks`` lists recent ones and
``DELETE .../tasks/{id}`` cancels a queued task (a running one cannot be stopped) or
deletes a finished one's record. Auth is ``Bearer <API key>``.

Seedance's older text commands (``--ratio 16:9 --duration 5`` appended to the prompt)
are never used: the ratio, duration, resolution, seed and audio travel as the JSON
fields PROTOCOLS.md lists, which every current model reads and the 2.x ones require.

Errors: Ark's ``error.code`` decides, the HTTP status is the fallback. A finished video
is a plain pre-signed URL (no credentials), valid 24 hours; its own ``X-Tos-Date`` and
``X-Tos-Expires`` say exactly when it lapses.
"""

from __future__ import annotations

from vidgate.providers.seedance.adapter import (
    MAX_PAGE_SIZE,
    RESULT_LIFETIME,
    TASKS,
    SeedanceProvider,
)
from vidgate.providers.seedance.catalogue import CAPABILITIES, DEFAULT_MODELS, EXTRA_FIELDS
from vidgate.providers.seedance.errors import category_of

__all__ = [
    "CAPABILITIES",
    "DEFAULT_MODELS",
    "EXTRA_FIELDS",
    "MAX_PAGE_SIZE",
    "RESULT_LIFETIME",
    "TASKS",
    "SeedanceProvider",
    "category_of",
]
