"""Counters that tests and benchmarks read from `GET /_sim/stats` (camelCase JSON)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from vidgate.simulator import hostile
from vidgate.simulator.faults import Fault

STATUSES = ("queued", "in_progress", "completed", "failed")
MAX_SAMPLES = 20


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.since = time.time()
        self.jobs_created = 0
        self.requests: Counter[str] = Counter()
        self.faults: Counter[Fault] = Counter()
        self.hostile_variants: Counter[str] = Counter()
        self.retry_after_violations = 0
        self.retry_after_samples: list[dict[str, Any]] = []
        self.overlapping_requests = 0
        self.overlap_samples: list[dict[str, Any]] = []

    def count_request(self, route: str) -> None:
        self.requests[route] += 1

    def count_fault(self, fault: Fault) -> None:
        self.faults[fault] += 1

    def count_hostile(self, variant: str) -> None:
        self.faults[Fault.HOSTILE] += 1
        self.hostile_variants[variant] += 1

    def count_retry_after_violation(self, key: str, route: str, *, early_by: float) -> None:
        self.retry_after_violations += 1
        if len(self.retry_after_samples) < MAX_SAMPLES:
            self.retry_after_samples.append(
                {"key": key, "route": route, "earlyBySeconds": round(early_by, 3)}
            )

    def count_overlap(self, key: str, route: str) -> None:
        self.overlapping_requests += 1
        if len(self.overlap_samples) < MAX_SAMPLES:
            self.overlap_samples.append({"key": key, "route": route, "at": time.time()})

    def snapshot(self, statuses: Iterable[str]) -> dict[str, Any]:
        """`statuses`: the current status of every stored job, counted here by status."""
        by_status = Counter(statuses)
        return {
            "jobsCreated": self.jobs_created,
            "requests": dict(sorted(self.requests.items())),
            "requestsTotal": sum(self.requests.values()),
            # Every kind is listed, zero or not, so readers need no defaults.
            "faultsInjected": {fault.value: self.faults[fault] for fault in Fault},
            "hostileVariants": {name: self.hostile_variants[name] for name in hostile.VARIANTS},
            "retryAfterViolations": self.retry_after_violations,
            "retryAfterViolationSamples": list(self.retry_after_samples),
            "overlappingRequests": self.overlapping_requests,
            "overlappingRequestSamples": list(self.overlap_samples),
            "jobsByStatus": {status: by_status[status] for status in STATUSES},
            "jobsStored": sum(by_status.values()),
            "since": self.since,
        }
