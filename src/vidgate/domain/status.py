"""Task statuses and the mapping between the task's and the pushed status words.

Upstream words are each adapter's business (``providers/*``): they map them to the neutral
``JobStatus``, which ``engine/observe.py`` reads as a task status.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """The task's own states, as REST ``data.status`` shows them."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"  # the upstream dropped the job before running it

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def pushed(self) -> str:
        """The upstream-style word used in WebSocket messages (``in_progress`` ...)."""
        return _PUSHED[self]


TERMINAL = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.EXPIRED}
)
ACTIVE = frozenset({TaskStatus.QUEUED, TaskStatus.PROCESSING})

_PUSHED = {
    TaskStatus.QUEUED: "queued",
    TaskStatus.PROCESSING: "in_progress",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
    TaskStatus.EXPIRED: "expired",
}
