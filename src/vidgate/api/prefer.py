"""``Prefer: wait=N`` on create (RFC 7240): hold the answer until the task ends, briefly.

The held request waits on the process's ``Notifier`` (a wake-up per change of its task),
reading the task when woken and, should a wake-up be lost, every ``event_poll_seconds``.
"""

from __future__ import annotations

import asyncio

from vidgate.api.notify import Notifier
from vidgate.domain.errors import InvalidHeader, TaskNotFound
from vidgate.domain.models import Task
from vidgate.service import TaskService

MAX_WAIT_SECONDS = 60


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] == '"':
        return word[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return word


def requested_wait(headers: list[str]) -> int | None:
    """The seconds a request's ``Prefer`` headers ask to wait, capped at
    ``MAX_WAIT_SECONDS``; None without a ``wait`` preference. Only the first ``wait``
    counts and other preferences are ignored (RFC 7240 §2); a ``wait`` that is not a
    non-negative integer is refused with 400 INVALID_PREFER."""
    for header in headers:
        for preference in _split(header, ","):
            name, has_value, value = _split(preference, ";")[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            seconds = _unquote(value.strip()) if has_value else ""
            if not (seconds.isascii() and seconds.isdigit()):
                raise InvalidHeader(
                    "Prefer: wait must be a non-negative integer number of seconds "
                    f"(at most {MAX_WAIT_SECONDS} are honoured).",
                    code="INVALID_PREFER",
                    details={"field": "Prefer", "max": MAX_WAIT_SECONDS},
                )
            # A long string of digits is simply a lot of seconds: capped, not parsed.
            return MAX_WAIT_SECONDS if len(seconds) > 4 else min(int(seconds), MAX_WAIT_SECONDS)
    return None


async def settle(
    notifier: Notifier, service: TaskService, user_id: str, task: Task, seconds: float
) -> Task:
    """``task`` as it is when it ends, or after ``seconds``, whichever comes first."""
    if seconds <= 0 or task.status.terminal:
        return task
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with notifier.watch(task.video_id) as waiter:  # before reading: no change slips by
        while True:
            try:
                task = await service.get(user_id, task.video_id)
            except TaskNotFound:  # deleted meanwhile: answer what was created
                return task
            remaining = deadline - loop.time()
            if task.status.terminal or remaining <= 0:
                return task
            await waiter.wait(remaining)
