"""Adapter for Runway's task API (``https://api.dev.runwayml.com``).

``POST /v1/text_to_video`` or ``/v1/image_to_video`` creates a task, ``GET /v1/tasks/{id}``
follows it, ``DELETE /v1/tasks/{id}`` cancels (or deletes) it. Every call carries the key
as a bearer token and the dated ``X-Runway-Version`` header. What this module absorbs:

- the neutral aspect ratio and resolution become Runway's pixel ``ratio`` (``1280:720``),
  from the list each model accepts on each endpoint;
- images become ``promptImage``: a plain URL for a first frame alone, else the
  ``[{uri, position: first|last}]`` form;
- ``THROTTLED`` is a queue, not a failure; ``progress`` 0..1 becomes 0..100;
- ``failureCode`` families (``SAFETY.*``, ``INTERNAL.*``, ``INPUT_PREPROCESSING.*``,
  ``ASSET.*``) map to error categories;
- output URLs are signed and expire (24-48 h, documented): their ``_jwt`` says when, and a
  stale one is replaced by reading the task again.
"""

from __future__ import annotations

from vidgate.providers.runway.adapter import (
    API_VERSION,
    RESULT_LIFETIME,
    RunwayProvider,
    failure_category,
)
from vidgate.providers.runway.catalogue import DEFAULT_MODELS, MODELS, PIXEL_RATIOS

__all__ = [
    "API_VERSION",
    "DEFAULT_MODELS",
    "MODELS",
    "PIXEL_RATIOS",
    "RESULT_LIFETIME",
    "RunwayProvider",
    "failure_category",
]
