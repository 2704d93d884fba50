"""The Runway API (``https://api.dev.runwayml.com``), as the simulator speaks it.

``POST /v1/image_to_video`` and ``POST /v1/text_to_video`` create a task (``{id}``),
``GET /v1/tasks/{id}`` reads it (PENDING, THROTTLED, RUNNING with ``progress`` 0..1,
SUCCEEDED with signed ``output`` URLs, FAILED with ``failureCode``), ``DELETE`` cancels or
deletes it (204, then 404). Every API request needs ``Authorization: Bearer <key>`` (when
the simulator has a key) and a supported ``X-Runway-Version``.

Prompt triggers: ``[fail]`` ends FAILED with ``SAFETY.INPUT.TEXT``, ``[error]`` with
``INTERNAL.BAD_OUTPUT.CODE01`` (worth a retry), ``[stuck]`` never finishes,
``[throttled]`` waits as THROTTLED instead of PENDING, ``[nocredits]`` is refused at
create time as an account without credits is.
"""

from __future__ import annotations

from fastapi import FastAPI

from vidgate.simulator.protocols.runway import envelope, routes, tasks
from vidgate.simulator.state import SimState


def install(app: FastAPI, state: SimState) -> None:
    tasks.runway_state(state)
    envelope.install(app)
    # The artifact route sits at the origin root, as a CDN would, whatever the API prefix.
    app.include_router(routes.artifacts)
    app.include_router(routes.api, prefix=state.config.prefix)
