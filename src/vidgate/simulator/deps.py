"""FastAPI dependencies: the state, and the guard every API route passes through.

The guard runs before the route reads its body, in the order a real upstream would apply
them: count the request, add latency, maybe inject a fault, then check the API key. It also
tells the tracker (tracking.py) when a request with a job key arrives and when it has been
answered, and which Retry-After an injected error asked for.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request

from vidgate.simulator import errors, faults, tracking
from vidgate.simulator.state import SimState

logger = logging.getLogger(__name__)

MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


RETRIEVE_ROUTE = "GET /videos/{video_id}"


def get_state(request: Request) -> SimState:
    return cast(SimState, request.app.state.sim)


StateDep = Annotated[SimState, Depends(get_state)]


def route_key(request: Request, prefix: str) -> str:
    """ "GET /videos/{video_id}": the method and route template, without the API prefix."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :]
    return f"{request.method} {path}"


def count_request(request: Request, state: StateDep) -> None:
    state.stats.count_request(route_key(request, state.config.prefix))


async def api_guard(request: Request, state: StateDep) -> AsyncIterator[None]:
    route = route_key(request, state.config.prefix)
    state.stats.count_request(route)
    key = tracking.key_of(route, request.path_params, request.headers)
    state.tracker.arrive(key, route, state.clock(), state.stats)
    try:
        config = state.config
        if config.latency_ms > 0:
            await asyncio.sleep(config.latency_ms / 1000)
        fault = faults.draw_request_fault(config, state.rng)
        if fault is faults.Fault.HOSTILE:
            # Only the job's own answer can be corrupted; the route applies and counts it.
            request.state.hostile = route == RETRIEVE_ROUTE
            fault = None
        if fault is not None:
            state.stats.count_fault(fault)
            logger.info(
                "simulator injected a fault",
                extra={"fault": fault.value, "route": route},
            )
            if fault is faults.Fault.TIMEOUT:
                await asyncio.sleep(config.hang_seconds)
            else:
                error = faults.injected_error(fault, config)
                wait = faults.retry_after_of(error.headers)
                if wait is not None:
                    now = state.clock()
                    state.tracker.hold_off(key, now + wait, now)
                raise error
        # Other protocols check their own credentials (their routers' dependencies).
        if config.api_key is not None and config.protocol == "openai-videos":
            _check_key(request.headers.get("authorization"), config.api_key)
        yield
    finally:
        state.tracker.leave(key)


def wants_hostile(request: Request) -> bool:
    """Whether the guard drew a hostile answer for this request."""
    return getattr(request.state, "hostile", False) is True


def _check_key(header: str | None, expected: str) -> None:
    scheme, _, given = (header or "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise errors.SimError(401, MISSING_KEY_MESSAGE)
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise errors.SimError(
            401,
            f"Incorrect API key provided: {_mask(given)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )


def _mask(key: str) -> str:
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:4]}{'*' * (len(key) - 8)}{key[-4:]}"
