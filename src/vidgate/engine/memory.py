"""What one engine process knows beyond the store."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from vidgate.domain.schedule import JobDurations
from vidgate.engine.limits import ProviderGate


@dataclass(kw_only=True)
class ProcessMemory:
    """Everything an engine keeps in memory between steps, in one place.

    It is lost when the process dies (or another worker takes a task over), and the
    store stays the only truth. So every entry is read so that its absence means the
    cautious thing: a process that knows nothing, as after a crash, behaves safely.

    ``gates``: per provider name, its concurrency and request-rate limits and its circuit
        breaker. Absent: a fresh gate with a closed breaker. The limits are per process
        anyway, and a failing provider opens the breaker again after
        ``breaker_failures`` failures; no task depends on a breaker's history.
    ``slot_locks``: per provider with ``max_jobs``, makes "count its running jobs, then
        take a slot" one step within this process. Absent: a new lock; the count itself
        is read from the store.
    ``failures``: videoId -> transient upstream failures in a row. Absent: none yet, so
        a task taken over gets its retry budget again. That costs time, never money:
        submissions are guarded by ``uncertain``, and every task has a deadline.
    ``uncertain``: (videoId, attempt number) -> whether a create call of that attempt
        may have reached the upstream. Absent: it may have, so an interrupted submission
        is recovered by its provider's policy, never sent blindly a second time.
    ``unconfirmed``: videoId -> "completed" answers seen without a playable video.
        Absent: none, so a task is failed for it only after that many answers in a row
        seen by one process, never on a single inconsistent answer.
    ``durations``: how long recent jobs of each provider, model and clip length took.
        Absent: polls follow the progress rate alone, as for a job never seen before.
    """

    gates: dict[str, ProviderGate] = dataclasses.field(default_factory=dict)
    slot_locks: dict[str, asyncio.Lock] = dataclasses.field(default_factory=dict)
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    uncertain: dict[tuple[str, int], bool] = dataclasses.field(default_factory=dict)
    unconfirmed: dict[str, int] = dataclasses.field(default_factory=dict)
    durations: JobDurations = dataclasses.field(default_factory=JobDurations)

    def maybe_received(self, video_id: str, number: int) -> bool:
        """Whether the upstream may hold a job of this attempt (unknown: it may)."""
        return self.uncertain.get((video_id, number), True)

    def forget(self, video_id: str) -> None:
        """Drop what is kept of a task that has ended."""
        self.failures.pop(video_id, None)
        self.unconfirmed.pop(video_id, None)
        for key in [k for k in self.uncertain if k[0] == video_id]:
            del self.uncertain[key]
