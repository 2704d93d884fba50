"""Kling's video API as the simulator speaks it (``--protocol kling``, no path prefix).

Routes (PROTOCOLS.md §1.4): ``POST /v1/videos/{text2video,image2video}``, ``GET`` the same
with ``/{task_id}`` (or the caller's ``external_task_id`` in its place) and the paged list.
Credentials: ``Authorization: Bearer <JWT>`` signed with the secret key of
``--api-key ACCESS_KEY:SECRET_KEY`` (auth.py). Answers: ``{code, message, request_id,
data}``; errors: HTTP status plus Kling's service code (envelope.py). Injected 429s are
code 1302; ``[concurrency]`` in a prompt gives 1303, ``[blocked]`` 1301 at creation,
``[fail]`` a task that fails on content grounds, ``[error]`` one that fails internally,
``[stuck]`` one that never ends. Result URLs are public (cdn.py) and expire.
"""

from __future__ import annotations

from fastapi import FastAPI

from vidgate.simulator.protocols.kling import auth, cdn, envelope, routes
from vidgate.simulator.state import SimState


def install(app: FastAPI, state: SimState) -> None:
    if state.config.api_key is not None:
        auth.KeyPair.parse(state.config.api_key)  # refuse a malformed key at start-up
    state.protocol_state[routes.PROTOCOL] = routes.index_of(state)
    envelope.install(app)
    app.include_router(cdn.router)
    app.include_router(routes.router, prefix=state.config.prefix)
