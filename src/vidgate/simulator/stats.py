"""Counters that tests and benchmarks read from `GET /_sim/stats` (camelCase JSON)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from vidgate.simulator.faults import Fault

STATUSES = ("queued", "in_progress", "completed", "failed")


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.since = time.time()
        self.jobs_created = 0
        self.requests: Counter[str] = Counter()
        self.faults: Counter[Fault] = Counter()

    def count_request(self, route: str) -> None:
        self.requests[route] += 1

    def count_fault(self, fault: Fault) -> None:
        self.faults[fault] += 1

    def snapshot(self, statuses: Iterable[str]) -> dict[str, Any]:
        """`statuses`: the current status of every stored job, counted here by status."""
        by_status = Counter(statuses)
        return {
            "jobsCreated": self.jobs_created,
            "requests": dict(sorted(self.requests.items())),
            "requestsTotal": sum(self.requests.values()),
            # Every kind is listed, zero or not, so readers need no defaults.
            "faultsInjected": {fault.value: self.faults[fault] for fault in Fault},
            "jobsByStatus": {status: by_status[status] for status in STATUSES},
            "jobsStored": sum(by_status.values()),
            "since": self.since,
        }
