"""The simulator's mutable state, one per app, and the operations routes delegate to."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from vidgate.simulator import faults, hostile, jobs, media, stats, tracking, validation
from vidgate.simulator.config import RUNTIME_FIELDS, SimConfig

logger = logging.getLogger(__name__)


class SimState:
    """Everything is touched from the server's event loop only, so nothing here locks."""

    def __init__(self, config: SimConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.jobs = jobs.JobStore()
        self.stats = stats.Stats()
        self.media = media.MediaCache()
        self.rng = random.Random(config.seed)
        self.tracker = tracking.Tracker()
        self.hostile_deck = hostile.Deck(self.rng)
        # The progress last answered truly by `GET /videos/{id}`, per job: what a hostile
        # "progress going backwards" answer goes below.
        self.last_progress: dict[str, int] = {}
        # What a non-OpenAI protocol keeps beside the jobs (simulator/protocols/), by name.
        self.protocol_state: dict[str, Any] = {}

    def create_job(
        self,
        params: validation.CreateParams,
        *,
        idempotency_key: str | None = None,
        remixed_from: str | None = None,
    ) -> jobs.Job:
        """A new job, or the one created earlier with the same Idempotency-Key."""
        if idempotency_key is not None:
            existing = self.jobs.by_idempotency_key(idempotency_key)
            if existing is not None:
                return existing
        config = self.config
        outcome = faults.draw_outcome(params.prompt, config, self.rng)
        if outcome is jobs.Outcome.FAIL:
            self.stats.count_fault(faults.Fault.JOB_FAIL)
        elif outcome is jobs.Outcome.STUCK:
            self.stats.count_fault(faults.Fault.JOB_STUCK)
        job = jobs.Job(
            id=jobs.new_id(),
            model=params.model,
            prompt=params.prompt,
            size=params.size,
            seconds=params.seconds,
            created_at=self.clock(),
            duration=config.job_seconds,
            expires_after=config.expires_after_seconds,
            outcome=outcome,
            error=faults.job_error(params.prompt, outcome),
            remixed_from_video_id=remixed_from,
        )
        self.jobs.add(job, idempotency_key)
        self.stats.jobs_created += 1
        logger.debug(
            "simulator created a job",
            extra={"videoId": job.id, "outcome": outcome.value, "remixedFrom": remixed_from},
        )
        return job

    def update_runtime(self, changes: Mapping[str, Any]) -> SimConfig:
        """Apply `/_sim/faults` changes; ValueError names the first bad field."""
        for name, value in changes.items():
            if name not in RUNTIME_FIELDS:
                raise ValueError(
                    f"Unknown setting '{name}'. Settable: {', '.join(RUNTIME_FIELDS)}."
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"Setting '{name}' must be a number.")
        updates: dict[str, Any] = {name: float(value) for name, value in changes.items()}
        self.config = dataclasses.replace(self.config, **updates)
        return self.config

    def stats_snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return self.stats.snapshot(jobs.phase(job, now).status for job in self.jobs)
