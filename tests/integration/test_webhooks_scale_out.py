"""Webhook deliveries shared by two vidgate processes on one PostgreSQL database: both
dispatch and send, and no attempt is sent twice (each claim is a lease taken with
``FOR UPDATE SKIP LOCKED`` that bumps the attempt number)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.databases import Kind
from tests.integration.test_webhooks import (
    FAST,
    TERMINAL,
    check_delivered,
    deliveries,
    register,
    stored_events,
    until,
)
from tests.receiver import Receiver
from tests.support import SimulatorServer, StartVidgate, WriteConfig

TASKS = 8
# One line per attempt (vidgate.webhooks.sender): its webhook-id and attempt number.
ATTEMPT = re.compile(r"webhook (msg_[0-9a-f]+) .*, attempt (\d+)\) -> ")


@pytest.fixture
def database_kind() -> Kind:
    return "postgresql"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    # A little slow, so both processes have attempts in flight at once.
    with Receiver(delay_seconds=0.05) as running:
        yield running


def test_two_processes_share_deliveries_without_sending_an_attempt_twice(
    start_vidgate: StartVidgate,
    simulator_process: Callable[..., SimulatorServer],
    provider_config: WriteConfig,
    receiver: Receiver,
    database_url: str,
) -> None:
    simulator = simulator_process(job_seconds=1.5)
    config = provider_config(simulator.base_url)
    env = {
        **FAST,
        "VIDGATE_CONFIG": str(config),
        "VIDGATE_WEBHOOK_POLL_SECONDS": "0.05",
        "VIDGATE_WEBHOOK_TIMEOUT_SECONDS": "5",  # a busy test machine is not a failure
    }
    one = start_vidgate(**env)
    two = start_vidgate(**env)
    video_ids: set[str] = set()
    with httpx.Client(base_url=one.url, timeout=15) as client:
        endpoints = [register(client, f"{receiver.url}/hook{n}") for n in range(3)]
        for n in range(TASKS):
            created = client.post("/api/video/tasks", json={"prompt": f"shared {n}"})
            assert created.status_code == 201, created.text
            video_ids.add(created.json()["data"]["videoId"])

        def all_done() -> bool:
            tasks = [client.get(f"/api/video/tasks/{v}").json()["data"] for v in video_ids]
            if any(t["status"] not in TERMINAL for t in tasks):
                return False
            logs = [deliveries(client, e["id"]) for e in endpoints]
            return all(log and all(d["status"] == "succeeded" for d in log) for log in logs)

        until(all_done, 60, "every task to end and every delivery to succeed")
        events = stored_events(database_url, video_ids)
        attempts = 0
        for n, endpoint in enumerate(endpoints):
            log = deliveries(client, endpoint["id"])
            assert sorted(d["eventId"] for d in log) == [e["id"] for e in events]
            check_delivered(events, receiver.on(f"/hook{n}"), log, endpoint["secret"])
            attempts += sum(d["attempts"] for d in log)
    by_one = Counter(ATTEMPT.findall(one.output()))
    by_two = Counter(ATTEMPT.findall(two.output()))
    assert by_one and by_two, "both processes send"
    both = by_one + by_two
    assert max(both.values()) == 1, [k for k, n in both.items() if n > 1]  # never one twice
    assert sum(both.values()) == attempts == len(receiver.receipts)
    retried = sum(int(n) > 1 for _, n in both)
    assert retried <= len(both) // 10, f"{retried} attempts of {len(both)} were retries"
