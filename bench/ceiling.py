"""The ceiling for ``bench/compare.py``: a bare FastAPI app with vidgate's body shapes.

``POST /api/video/tasks`` parses the same JSON body with a pydantic model and answers 201
with ``{"success": true, "data": {...}}`` carrying the same task fields vidgate returns;
``GET /api/video/tasks/{videoId}`` answers the same shape (404 with vidgate's error shape
for an unknown id). Tasks live in a dict: no database, no engine, no upstream. What is left
is uvicorn + FastAPI + pydantic on the same routes, i.e. the most a FastAPI gateway with
these bodies can do on this machine. Served like ``vidgate serve`` serves: one process,
uvicorn's ``auto`` loop and HTTP parser (uvloop and httptools when installed), no access
log.

Run: ``.venv/bin/python bench/ceiling.py --port 8010``.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CreateBody(Camel):
    prompt: str = Field(min_length=1, max_length=32_000)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    seconds: str = Field(default="4", pattern=r"^[0-9]{1,3}(\.[0-9]{1,2})?$")
    size: str = Field(default="720x1280", pattern=r"^[0-9]{2,5}x[0-9]{2,5}$")
    input_reference: str | None = Field(default=None, max_length=2048)


class TaskOut(Camel):
    video_id: str
    user_id: str
    status: str
    progress: int
    prompt: str
    model: str
    seconds: str
    size: str
    input_reference: str | None
    external_video_id: str | None
    video_url: str | None
    error: dict[str, Any] | None
    metadata: dict[str, Any]
    attempts: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    params: dict[str, Any] = Field(default_factory=dict)
    expires_at: datetime | None = None
    usage: dict[str, Any] | None = None


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: T


app = FastAPI(title="vidgate bench ceiling")
TASKS: dict[str, TaskOut] = {}


@app.get("/readyz")
async def readyz() -> dict[str, Any]:
    return {"success": True, "data": {"status": "ok"}}


@app.post("/api/video/tasks", status_code=201, response_model=Envelope[TaskOut])
async def create_task(body: CreateBody) -> Envelope[TaskOut]:
    now = datetime.now(UTC)
    task = TaskOut(
        video_id=f"video_{uuid.uuid4()}",
        user_id="local",
        status="QUEUED",
        progress=0,
        prompt=body.prompt,
        model=body.model or "sora_video2",
        seconds=body.seconds,
        size=body.size,
        input_reference=body.input_reference,
        external_video_id=None,
        video_url=None,
        error=None,
        metadata={},
        attempts=[],
        created_at=now,
        updated_at=now,
        completed_at=None,
    )
    TASKS[task.video_id] = task
    return Envelope(data=task)


@app.get("/api/video/tasks/{video_id}", response_model=Envelope[TaskOut])
async def get_task(video_id: str) -> Envelope[TaskOut] | JSONResponse:
    task = TASKS.get(video_id)
    if task is None:
        return JSONResponse(
            status_code=404,
            content={
                "success": False,
                "error": {"code": "TASK_NOT_FOUND", "message": "No such task.", "details": {}},
            },
        )
    return Envelope(data=task)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/ceiling.py", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    options = parser.parse_args()
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
