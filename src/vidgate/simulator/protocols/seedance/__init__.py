"""The simulator speaking Volcengine Ark / BytePlus ModelArk's Seedance task API
(PROTOCOLS.md §1.9): ``/contents/generations/tasks`` under the prefix (``/api/v3``),
Bearer API keys, Ark's error envelope and codes, and pre-signed result URLs that expire.

Modules: ``catalog`` (models and limits), ``validation`` (request checks), ``tasks``
(status in Ark's words, the task object), ``routes`` (the API), ``storage`` (the signed
video URLs), ``envelope`` (errors).
"""

from __future__ import annotations

from fastapi import FastAPI

from vidgate.simulator.protocols.seedance import envelope, routes, storage, tasks
from vidgate.simulator.state import SimState


def install(app: FastAPI, state: SimState) -> None:
    tasks.registry(state)
    envelope.install(app)
    app.include_router(storage.router)
    app.include_router(routes.router, prefix=state.config.prefix)
