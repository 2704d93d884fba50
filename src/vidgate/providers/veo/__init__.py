"""Adapter for Veo, a long-running operation on two Google surfaces (``kind = "gemini-veo"``).

``surface = "gemini"`` (the default) is the Gemini API: ``base_url`` is
``https://generativelanguage.googleapis.com/v1beta``, the key goes in ``x-goog-api-key``;
create is ``POST models/{m}:predictLongRunning`` and the job is read with
``GET {operation name}``. ``surface = "vertex"`` is Vertex AI: ``base_url`` is the
regional origin, ``https://{location}-aiplatform.googleapis.com``, with ``project``,
``location`` and ``service_account_file``; a bearer token comes from the file through
``google-auth`` (imported on first use); create is
``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:predictLongRunning``
and the job is read with ``POST ...:fetchPredictOperation``. A provider with a
``service_account_file`` and no API key is taken as Vertex, so one rebuilt from an
attempt's binding (which keeps only the base URL and the credential) still reads its
jobs.

The job's id is the operation name: it is what is polled. Veo reports no progress, only
``done``. A result needs the credentials: Gemini's file URI wants the key, Vertex answers
the video inline (base64) or as a ``gs://`` object (with ``extra.storageUri``). So every
``ResultVideo`` has ``needs_credentials`` (an inline one has no URL at all) and
``open_content`` adds the credentials; vidgate streams or mirrors the video and never
hands a key to a browser. A finished operation without a sample is a failure:
``content_policy`` when the RAI filter withheld it (``raiMediaFilteredCount``).

Veo takes images inline, so each image URL is fetched here at create (media.py) and
sent as base64. Veo has no idempotency key, no client-chosen id and no job listing: a
create whose outcome is unknown cannot be recovered, which the engine handles by
failing it safely.
"""

from __future__ import annotations

from vidgate.providers.veo.provider import (
    GEMINI_RESULT_LIFETIME,
    VERTEX_MAX_OPERATION_BYTES,
    VeoProvider,
)
from vidgate.providers.veo.wire import DEFAULT_MODELS, VERTEX_DEFAULT_MODELS

__all__ = [
    "DEFAULT_MODELS",
    "GEMINI_RESULT_LIFETIME",
    "VERTEX_DEFAULT_MODELS",
    "VERTEX_MAX_OPERATION_BYTES",
    "VeoProvider",
]
