"""Request dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vidgate.api.runtime import Runtime
from vidgate.service import TaskService

LOCAL_USER = "local"


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_service(request: Request) -> TaskService:
    runtime: Runtime = request.app.state.runtime
    return runtime.service


async def current_user() -> str:
    """The caller's user id. Authentication modes arrive with issue 5; until then every
    caller is the one local user."""
    return LOCAL_USER


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServiceDep = Annotated[TaskService, Depends(get_service)]
CurrentUser = Annotated[str, Depends(current_user)]
