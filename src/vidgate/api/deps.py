"""Request dependencies as ``Annotated`` aliases.

``CurrentPrincipal`` authenticates the request (``Authorization: Bearer <token>``, the
scheme in any case) with the runtime's authenticator, then counts it against the user's
request rate. ``CurrentUser`` is that principal's user id, which every task route
scopes its reads and writes to; ``AdminPrincipal`` also requires the admin role.
FastAPI runs ``current_principal`` once per request however many of them a route uses.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vidgate.api.runtime import Runtime
from vidgate.auth.base import Principal
from vidgate.auth.factory import bearer_token
from vidgate.domain.errors import Forbidden
from vidgate.service import TaskService

# Only for the OpenAPI schema (the "Authorize" button of /docs): the header is parsed
# below, so that a malformed one gets our error instead of being ignored. The document
# requires it on every route that depends on ``current_principal``, except in mode
# ``none``, whose document has no security at all (``vidgate.api.openapi``).
_bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`vg_...`) or a JWT, depending on VIDGATE_AUTH_MODE.",
)


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_service(request: Request) -> TaskService:
    runtime: Runtime = request.app.state.runtime
    return runtime.service


async def current_principal(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller; 401 with a specific code, or 429 RATE_LIMITED."""
    runtime: Runtime = request.app.state.runtime
    token = None
    if runtime.settings.auth_mode != "none":  # mode none ignores whatever is sent
        token = bearer_token(request.headers.get("authorization"))
    principal = await runtime.authenticator.authenticate(token)
    limits = runtime.settings.limits_for(principal.user_id)
    await runtime.limiter.check(principal.user_id, limits.requests_per_minute)
    return principal


async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> str:
    """The caller's user id: the owner every task route scopes to."""
    return principal.user_id


async def admin_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    if not principal.admin:
        raise Forbidden("This route needs the admin role.", code="ADMIN_REQUIRED")
    return principal


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServiceDep = Annotated[TaskService, Depends(get_service)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentUser = Annotated[str, Depends(current_user)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
