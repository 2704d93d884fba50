"""Test data shared by the test modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from vidgate.domain import ids
from vidgate.domain.models import Task
from vidgate.store.base import TaskStore


def sample_task(**changes: Any) -> Task:
    """A fresh QUEUED task of user ``alice``; keyword arguments override any field."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "video_id": ids.new_video_id(),
        "user_id": "alice",
        "prompt": "a cat on a skateboard",
        "model": "sora-2",
        "seconds": "4",
        "size": "720x1280",
        "created_at": now,
        "updated_at": now,
        "deadline_at": now + timedelta(minutes=30),
    }
    fields.update(changes)
    return Task(**fields)


async def new_task(store: TaskStore) -> str:
    """Store a ``sample_task``; its videoId."""
    task = sample_task()
    await store.create(task)
    return task.video_id
