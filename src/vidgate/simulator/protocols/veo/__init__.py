"""Veo as Google serves it: a long-running operation on the Gemini API and on Vertex AI.

One simulator speaks both surfaces at once: the Gemini API under the configured prefix
(``/v1beta`` by default, so a provider's ``base_url`` is ``{origin}/v1beta``), Vertex AI
at the origin root (``/v1/projects/...``, so its ``base_url`` is the origin), and the
OAuth token endpoint a service account's ``token_uri`` points at (``{origin}/token``).

Jobs are the simulator's clock-driven ``jobs.Job``; Veo reports no progress, only
``done``. Prompt triggers: ``[fail]`` ends in the RAI filter (``done`` with
``raiMediaFilteredCount`` and no sample), ``[error]`` in an internal error
(``done`` with ``error.code`` 13), ``[stuck]`` never ends. Gemini's generated files
expire ``expires_after_seconds`` after completion, as its two-day storage does.
"""

from __future__ import annotations

from fastapi import FastAPI

from vidgate.simulator.protocols.veo import google, oauth, routes
from vidgate.simulator.state import SimState


def install(app: FastAPI, state: SimState) -> None:
    google.install(app)
    app.include_router(oauth.router)
    app.include_router(routes.gemini, prefix=state.config.prefix)
    app.include_router(routes.vertex)
