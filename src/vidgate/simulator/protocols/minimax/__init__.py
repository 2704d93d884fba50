"""MiniMax Hailuo, video API v1 (`--protocol minimax`), as its API reference documents it.

- `POST /v1/video_generation` -> `{"task_id", "base_resp"}`;
- `GET /v1/query/video_generation?task_id=` -> Preparing, Queueing, Processing, Success
  (with a `file_id`) or Fail (with the reason in `base_resp`); no progress figure;
- `GET /v1/files/retrieve?file_id=` -> `file.download_url`, a signed URL on the CDN that
  expires `expires_after_seconds` after it was handed out (MiniMax: 9 hours).

Errors, the injected ones included, are `base_resp {status_code, status_msg}` under
HTTP 200 (1002 rate limit, 1004 login fail, 2013 invalid params, ...); only the 500 and 503
a gateway would send keep their HTTP status. The prefix is empty by default: MiniMax's base
URL is the bare origin `https://api.minimax.io`. Version 2 (`/v2/...`) is not spoken here.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from vidgate.simulator import errors, faults
from vidgate.simulator.protocols.minimax import routes, tasks, wire
from vidgate.simulator.state import SimState

CREATE_PATH = "/v1/video_generation"


def install(app: FastAPI, state: SimState) -> None:
    state.protocol_state[tasks.NAME] = tasks.MiniMaxState()
    app.add_exception_handler(errors.SimError, _handle_error)
    app.include_router(routes.cdn)
    app.include_router(routes.api, prefix=state.config.prefix)


async def _handle_error(request: Request, exc: Exception) -> Response:
    """Every error of the API routes in MiniMax's envelope; `/_sim/*` keeps its own."""
    assert isinstance(exc, errors.SimError)
    if request.url.path.startswith("/_sim/") or isinstance(exc, faults.GarbageAnswer):
        return exc.response()
    code, message, status, headers = _reading(exc)
    body: dict[str, object] = {}
    if request.method == "POST" and request.url.path.endswith(CREATE_PATH):
        body["task_id"] = ""  # a refused create still names the field, empty
    body["base_resp"] = wire.base_resp(code, message)
    return JSONResponse(body, status_code=status, headers=headers)


def _reading(exc: errors.SimError) -> tuple[int, str, int, dict[str, str]]:
    """(code, message, HTTP status, headers) of an error in MiniMax's terms."""
    if isinstance(exc, wire.MiniMaxError):
        return exc.status_code, exc.message, exc.status, exc.headers
    if exc.status == 429:
        # MiniMax signals its limits in the body alone: HTTP 200, no Retry-After.
        return wire.RATE_LIMIT, wire.RATE_LIMIT_MESSAGE, 200, {}
    if exc.status == 500:
        return wire.INTERNAL_ERROR, wire.INTERNAL_ERROR_MESSAGE, 500, exc.headers
    if exc.status >= 500:
        return wire.UNKNOWN_ERROR, wire.UNKNOWN_ERROR_MESSAGE, exc.status, exc.headers
    return wire.INVALID_PARAMS, f"invalid params, {exc.message}", 200, exc.headers
