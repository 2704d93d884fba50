"""Kling's task records beside the simulator's clock-driven jobs, and their JSON views.

A task is a ``jobs.Job`` (whose id is the task id, so ``/_sim/jobs/{id}`` still works) plus
what Kling's answers need: the endpoint family, the caller's ``external_task_id`` and the
requested duration. Statuses are the vendor's words: queued -> submitted, in_progress ->
processing, completed -> succeed, failed -> failed; there is no progress figure.
Timestamps are Unix milliseconds.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from vidgate.simulator import jobs

WORDS = {
    "queued": "submitted",
    "in_progress": "processing",
    "completed": "succeed",
    "failed": "failed",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Task:
    task_id: str
    family: str
    external_task_id: str | None
    duration: str
    mode: str
    video_id: str


@dataclass(slots=True)
class TaskIndex:
    """Per simulator: tasks by id and by ``external_task_id`` (unique per account)."""

    tasks: dict[str, Task] = field(default_factory=dict)
    by_external: dict[str, str] = field(default_factory=dict)

    def add(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        if task.external_task_id is not None:
            self.by_external[task.external_task_id] = task.task_id

    def find(self, family: str, task_or_external_id: str) -> Task | None:
        """The path of the query takes either id (the vendor: "choose one of the two")."""
        task = self.tasks.get(task_or_external_id)
        if task is None:
            found = self.by_external.get(task_or_external_id)
            task = self.tasks.get(found) if found is not None else None
        return task if task is not None and task.family == family else None

    def of_family(self, family: str) -> list[Task]:
        return [task for task in self.tasks.values() if task.family == family]


def new_task_id() -> str:
    """Kling's task ids are 18-digit decimal strings (e.g. "866889456698785798")."""
    return str(secrets.randbelow(9 * 10**17) + 10**17)


def new_video_id() -> str:
    return str(uuid.uuid4())


def video_path(task: Task) -> str:
    """Where the result file is served, in the shape of Kling's CDN paths."""
    return f"/bs2/upload-kling-api/{task.task_id}/video/{task.video_id}.mp4"


def created(task: Task, job: jobs.Job) -> dict[str, Any]:
    at = _ms(job.created_at)
    return {
        "task_id": task.task_id,
        "task_status": "submitted",
        "task_info": _info(task),
        "created_at": at,
        "updated_at": at,
    }


def task_data(task: Task, job: jobs.Job, now: float, origin: str) -> dict[str, Any]:
    phase = jobs.phase(job, now)
    word = WORDS[phase.status]
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "task_status": word,
        "task_status_msg": job.error.message if word == "failed" and job.error else "",
        "task_info": _info(task),
        "created_at": _ms(job.created_at),
        "updated_at": _ms(_updated_at(job, phase)),
    }
    if word == "succeed":
        data["final_unit_deduction"] = _units(task)
        data["task_result"] = {
            "videos": [
                {
                    "id": task.video_id,
                    "url": origin.rstrip("/") + video_path(task),
                    "duration": task.duration,
                }
            ]
        }
    elif word == "failed":
        # A real failed task carries an empty result object (QuantumNous/new-api#2532).
        data["task_result"] = {}
    return data


def _info(task: Task) -> dict[str, str]:
    return {} if task.external_task_id is None else {"external_task_id": task.external_task_id}


def _updated_at(job: jobs.Job, phase: jobs.Phase) -> float:
    if phase.finished_at is not None:
        return phase.finished_at
    if phase.status == "in_progress":
        return job.created_at + job.duration * jobs.QUEUED_FRACTION
    return job.created_at


def _units(task: Task) -> str:
    """Resource-pack units deducted, as a decimal string: 1 per 5 s in std, 3.5 in pro.
    An illustrative figure, not the vendor's price list."""
    per_five = 3.5 if task.mode == "pro" else 1.0
    return f"{per_five * int(task.duration) / 5:g}"


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
