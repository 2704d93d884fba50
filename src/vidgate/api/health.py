"""Liveness and readiness, served by every role."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from vidgate.api.deps import RuntimeDep
from vidgate.api.errors import envelope
from vidgate.api.schemas import Envelope, Health

router = APIRouter()


@router.get("/healthz", response_model=Envelope[Health], tags=["health"])
async def healthz() -> Envelope[Health]:
    return Envelope(data=Health(status="ok"))


@router.get("/readyz", response_model=Envelope[Health], tags=["health"])
async def readyz(runtime: RuntimeDep) -> Envelope[Health] | JSONResponse:
    """Ready when the database and the event bus answer; 503 NOT_READY otherwise."""
    checks = await runtime.readiness()
    if all(v == "ok" for v in checks.values()):
        return Envelope(data=Health(status="ok", checks=checks))
    return envelope(503, "NOT_READY", "A dependency is not reachable.", {"checks": checks})
