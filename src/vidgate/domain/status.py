"""Task statuses and the one mapping between task, pushed and upstream status words."""

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

# Upstream words seen across gateways and resellers of the /v1/videos convention. Anything
# not listed is unknown: logged by the engine and treated as non-terminal (engine rule 5),
# so one reseller's new word never fails a task. An upstream "cancelled" we did not ask
# for ends the attempt as a failure.
_FROM_UPSTREAM = {
    "queued": TaskStatus.QUEUED,
    "pending": TaskStatus.QUEUED,
    "submitted": TaskStatus.QUEUED,
    "in_progress": TaskStatus.PROCESSING,
    "processing": TaskStatus.PROCESSING,
    "running": TaskStatus.PROCESSING,
    "generating": TaskStatus.PROCESSING,
    "completed": TaskStatus.COMPLETED,
    "succeeded": TaskStatus.COMPLETED,
    "success": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "failure": TaskStatus.FAILED,
    "error": TaskStatus.FAILED,
    "cancelled": TaskStatus.FAILED,
    "canceled": TaskStatus.FAILED,
    "expired": TaskStatus.FAILED,
}


def from_upstream(word: object) -> TaskStatus | None:
    """Map an upstream status word to a task status; ``None`` when the word is unknown."""
    if not isinstance(word, str):
        return None
    return _FROM_UPSTREAM.get(word.strip().lower())
