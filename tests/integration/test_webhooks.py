"""Outbound webhooks against real processes: a vidgate process, a receiver HTTP server on
loopback that verifies every delivery with ``standardwebhooks``, and the store's own
``task_events`` as the list of what must arrive."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.databases import query
from tests.receiver import Receipt, Receiver
from tests.support import VIDGATE, SimulatorServer, StartVidgate, VidgateServer, WriteConfig

SECRET = "webhook-test-secret-" + "x" * 32
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
FAST = {
    "VIDGATE_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
    "VIDGATE_WEBHOOK_POLL_SECONDS": "0.2",
    "VIDGATE_WEBHOOK_TIMEOUT_SECONDS": "1",
    "VIDGATE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "VIDGATE_WEBHOOK_RETRY_MAX_SECONDS": "1",
}
JWT = {
    "VIDGATE_AUTH_MODE": "jwt",
    "VIDGATE_JWT_SECRET": SECRET,
    "VIDGATE_JWT_ISSUER": "https://login.example.test",
    "VIDGATE_JWT_AUDIENCE": "vidgate",
}


def as_user(server: VidgateServer, user: str) -> httpx.Client:
    claims = {"sub": user, "iss": JWT["VIDGATE_JWT_ISSUER"], "aud": JWT["VIDGATE_JWT_AUDIENCE"]}
    token = jwt.encode({**claims, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
    return httpx.Client(
        base_url=server.url, timeout=15, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(slow_seconds=1.6) as running:
        yield running


def until(check: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def register(client: httpx.Client, url: str, **body: Any) -> dict[str, Any]:
    response = client.post("/api/webhooks", json={"url": url, **body})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def deliveries(client: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/webhooks/{endpoint_id}/deliveries", params={"limit": 100})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]["items"]
    return items


def stored_events(database_url: str, video_ids: set[str]) -> list[dict[str, Any]]:
    """``task_events`` rows of these tasks, oldest first: what must be delivered."""
    rows = query(database_url, "SELECT id, video_id, type, payload FROM task_events ORDER BY id")
    return [
        {"id": i, "videoId": v, "type": t, "payload": json.loads(p)}
        for i, v, t, p in rows
        if v in video_ids
    ]


def check_delivered(
    events: list[dict[str, Any]], receipts: list[Receipt], log: list[dict[str, Any]], secret: str
) -> None:
    """Every event arrived at least once, accepted (2xx in time), signed with ``secret``,
    with its own content; and per task, accepted in event order."""
    event_of = {d["deliveryId"]: d["eventId"] for d in log}
    accepted = [r for r in receipts if r.answered is not None and 200 <= r.answered < 300]
    for receipt in receipts:
        receipt.verify(secret)  # raises if any delivery is not signed right
    got: dict[int, Receipt] = {}
    order: dict[str, list[int]] = {}
    for receipt in sorted(accepted, key=lambda r: r.at):
        event_id = event_of[receipt.webhook_id]
        got.setdefault(event_id, receipt)
        order.setdefault(receipt.message["data"]["videoId"], []).append(event_id)
    missing = [e["id"] for e in events if e["id"] not in got]
    assert not missing, f"events never delivered: {missing}"
    for event in events:
        message = got[event["id"]].message
        assert message["type"] == event["type"]
        assert message["timestamp"].endswith("Z")
        data = message["data"]
        for name in ("videoId", "externalVideoId", "status", "progress"):
            assert data[name] == event["payload"][name], (name, data, event)
        assert data.get("result") == event["payload"].get("result")
        assert data.get("error") == event["payload"].get("error")
    for video_id, seen in order.items():
        assert seen == sorted(seen), f"{video_id}: delivered out of order: {seen}"


def test_a_task_lifecycle_reaches_its_endpoint_and_its_own_url_signed_and_in_order(
    start_vidgate: StartVidgate, receiver: Receiver, tmp_path: Path
) -> None:
    server = start_vidgate(job_seconds=1.5, **FAST, **JWT)
    with as_user(server, "alice") as alice, as_user(server, "bob") as bob:
        endpoint = register(alice, f"{receiver.url}/alice")
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
        assert endpoint["eventTypes"] == [
            "taskProgress",
            "taskCompleted",
            "taskFailed",
            "taskCancelled",
        ]
        listed = alice.get("/api/webhooks").json()["data"]["items"]
        assert [e["id"] for e in listed] == [endpoint["id"]]
        assert secret not in json.dumps(listed)  # shown once, never listed
        # Another user neither sees nor touches it.
        assert bob.get("/api/webhooks").json()["data"]["items"] == []
        for call in (
            bob.delete(f"/api/webhooks/{endpoint['id']}"),
            bob.post(f"/api/webhooks/{endpoint['id']}/rotate"),
            bob.get(f"/api/webhooks/{endpoint['id']}/deliveries"),
        ):
            assert call.status_code == 404, call.text
            assert call.json()["error"]["code"] == "WEBHOOK_NOT_FOUND"
        # An endpoint that only wants completions.
        only_done = register(alice, f"{receiver.url}/done", eventTypes=["taskCompleted"])
        only_done_secret = only_done["secret"]

        task_secret = alice.get("/api/webhooks/task-secret").json()["data"]["secret"]
        assert task_secret.startswith("whsec_")
        assert alice.get("/api/webhooks/task-secret").json()["data"]["secret"] == task_secret
        assert bob.get("/api/webhooks/task-secret").json()["data"]["secret"] != task_secret

        created = alice.post(
            "/api/video/tasks",
            json={"prompt": "a fox", "webhookUrl": f"{receiver.url}/task"},
        )
        assert created.status_code == 201, created.text
        video_id = created.json()["data"]["videoId"]
        until(
            lambda: alice.get(f"/api/video/tasks/{video_id}").json()["data"]["status"] in TERMINAL,
            30,
            "the task to end",
        )
        for path in ("/alice", "/task", "/done"):
            until(
                lambda path=path: any(
                    r.message["type"] == "taskCompleted" for r in receiver.on(path)
                ),
                15,
                f"taskCompleted at {path}",
            )
        events = stored_events(server.env["VIDGATE_DATABASE_URL"], {video_id})
        assert events[-1]["type"] == "taskCompleted"
        log = deliveries(alice, endpoint["id"])
        assert all(d["status"] == "succeeded" and d["attempts"] == 1 for d in log), log
        assert sorted(d["eventId"] for d in log) == [e["id"] for e in events]
        check_delivered(events, receiver.on("/alice"), log, secret)
        # The task's own URL got every event too, signed with the task secret.
        task_receipts = receiver.on("/task")
        assert [r.verify(task_secret)["type"] for r in task_receipts] == [e["type"] for e in events]
        # The filtered endpoint got the completion only.
        assert [r.message["type"] for r in receiver.on("/done")] == ["taskCompleted"]
        assert len(deliveries(alice, only_done["id"])) == 1

        # Replay: the same webhook-id once more.
        first = log[-1]
        replay = alice.post(
            f"/api/webhooks/{endpoint['id']}/deliveries/{first['deliveryId']}/replay"
        )
        assert replay.status_code == 200, replay.text
        until(
            lambda: sum(r.webhook_id == first["deliveryId"] for r in receiver.on("/alice")) == 2,
            10,
            "the replay",
        )

        # Rotation: both the old and the new secret verify for the overlap.
        rotated = alice.post(f"/api/webhooks/{endpoint['id']}/rotate")
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["data"]["secret"]
        assert new_secret != secret and rotated.json()["data"]["rotatingUntil"]
        before = len(receiver.on("/alice"))
        alice.post(f"/api/webhooks/{endpoint['id']}/deliveries/{first['deliveryId']}/replay")
        until(lambda: len(receiver.on("/alice")) > before, 10, "a delivery after rotation")
        signed = receiver.on("/alice")[-1]
        assert signed.headers["webhook-signature"].count("v1,") == 2
        signed.verify(secret)
        signed.verify(new_secret)

        # The verify helper, exactly as docs/API.md shows it: headers and body in files.
        (tmp_path / "headers.txt").write_text(
            "".join(f"{k}: {v}\n" for k, v in signed.headers.items())
        )
        (tmp_path / "body.json").write_text(signed.body)
        cli = [VIDGATE, "webhooks", "verify", "--headers", "headers.txt", "--body", "body.json"]

        def run(secret_given: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*cli, "--secret", secret_given],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=False,
            )

        ok = run(new_secret)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith(f"verified: {signed.webhook_id} ")
        wrong = run(only_done_secret)
        assert wrong.returncode == 1 and "not verified" in wrong.stderr
        (tmp_path / "body.json").write_text(signed.body.replace("progress", "progres"))
        assert run(new_secret).returncode == 1

        # Deleted: gone from the list, nothing more sent.
        assert alice.delete(f"/api/webhooks/{endpoint['id']}").status_code == 200
        assert alice.delete(f"/api/webhooks/{endpoint['id']}").status_code == 404
        assert [e["id"] for e in alice.get("/api/webhooks").json()["data"]["items"]] == [
            only_done["id"]
        ]


def test_410_disables_the_endpoint_and_a_redirect_is_a_failure(
    start_vidgate: StartVidgate, receiver: Receiver
) -> None:
    receiver.modes.update({"/gone": "gone", "/moved": "redirect", "/slow": "slow"})
    server = start_vidgate(job_seconds=1.0, **FAST)
    with httpx.Client(base_url=server.url, timeout=15) as client:
        gone = register(client, f"{receiver.url}/gone")
        moved = register(client, f"{receiver.url}/moved")
        slow = register(client, f"{receiver.url}/slow")
        created = client.post("/api/video/tasks", json={"prompt": "a heron"})
        video_id = created.json()["data"]["videoId"]

        def ended() -> dict[str, Any] | None:
            task: dict[str, Any] = client.get(f"/api/video/tasks/{video_id}").json()["data"]
            return task if task["status"] in TERMINAL else None

        task = until(ended, 30, "the task to end")
        # A receiver that never answers in time holds nothing up: the task ran its
        # course (a 1 s job) while not one delivery to it has succeeded.
        assert task["status"] == "COMPLETED"
        took = datetime.fromisoformat(task["completedAt"]) - datetime.fromisoformat(
            task["createdAt"]
        )
        assert took.total_seconds() < 10, took
        assert all(d["status"] == "pending" for d in deliveries(client, slow["id"]))
        until(
            lambda: sum(d["attempts"] for d in deliveries(client, moved["id"])) >= 3,
            15,
            "redirect retries",
        )
        listed = {e["id"]: e for e in client.get("/api/webhooks").json()["data"]["items"]}
        assert listed[gone["id"]]["disabled"] is True
        assert listed[gone["id"]]["disabledReason"] == "410 Gone"
        assert listed[moved["id"]]["disabled"] is False
        log = deliveries(client, gone["id"])
        statuses = sorted(d["status"] for d in log)
        assert statuses.count("failed") == 1 and set(statuses) <= {"failed", "cancelled"}
        assert [d["lastStatusCode"] for d in log if d["status"] == "failed"] == [410]
        assert len(receiver.on("/gone")) == 1  # nothing after the 410
        replay = client.post(f"/api/webhooks/{gone['id']}/deliveries/{log[0]['deliveryId']}/replay")
        assert replay.status_code == 409
        assert replay.json()["error"]["code"] == "WEBHOOK_DISABLED"
        # The redirect was never followed, and the delivery is still being retried.
        first = min(deliveries(client, moved["id"]), key=lambda d: d["eventId"])
        assert first["status"] == "pending" and first["lastStatusCode"] == 302
        assert first["nextAttemptAt"] is not None
        assert "redirect" in first["lastError"]
        assert receiver.on("/redirected") == []
        # Later events of the task wait for the first (per-task order).
        later = [d for d in deliveries(client, moved["id"]) if d["eventId"] != first["eventId"]]
        assert all(d["attempts"] == 0 for d in later), later
        assert {r.webhook_id for r in receiver.on("/moved")} == {first["deliveryId"]}


def test_bad_urls_and_event_types_are_refused(shared_vidgate: VidgateServer) -> None:
    bad = {
        "ftp://example.com/hook": "only http and https",
        "http://127.0.0.1:9/hook": "not a public address",
        "http://10.1.2.3/hook": "not a public address",
        "http://169.254.169.254/latest": "not a public address",
        "http://localhost:8080/": "localhost",
        "http://user:pw@example.com/": "credentials",
        "https://example.com/" + "a" * 2100: "at most 2048",
        "not-a-url": "only http and https",
        "http://exa mple.com/": "whitespace",
    }
    with httpx.Client(base_url=shared_vidgate.url, timeout=15) as client:
        for url, problem in bad.items():
            response = client.post("/api/webhooks", json={"url": url})
            assert response.status_code == 422, (url, response.text)
            error = response.json()["error"]
            assert error["code"] == "VALIDATION_ERROR"
            assert problem in error["message"], (url, error)
        for types in (["taskDone"], [], ["taskCompleted", 3], "taskCompleted"):
            response = client.post(
                "/api/webhooks", json={"url": "https://example.com/", "eventTypes": types}
            )
            assert response.status_code == 422, (types, response.text)
            assert response.json()["success"] is False
        response = client.post(
            "/api/video/tasks", json={"prompt": "x", "webhookUrl": "http://127.0.0.1/x"}
        )
        assert response.status_code == 422, response.text
        assert "webhookUrl" in response.json()["error"]["message"]
        for path in ("/api/webhooks/wh_nope", "/api/webhooks/wh_nope/rotate"):
            call = client.delete(path) if path.endswith("nope") else client.post(path)
            assert call.status_code == 404
            assert call.json()["error"]["code"] == "WEBHOOK_NOT_FOUND"
        nothing = client.post("/api/webhooks/wh_nope/deliveries/msg_x/replay")
        assert nothing.status_code == 404


@pytest.mark.slow
def test_a_killed_and_restarted_vidgate_loses_no_webhook(
    start_vidgate: StartVidgate,
    simulator_process: Callable[..., SimulatorServer],
    provider_config: WriteConfig,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    simulator = simulator_process(job_seconds=2.0)
    config = provider_config(simulator.base_url)
    db = tmp_path / "webhooks.db"
    env = {**FAST, "VIDGATE_CONFIG": str(config), "VIDGATE_LEASE_SECONDS": "3"}
    receiver.default = "down"  # 503 at first
    first = start_vidgate(db=db, **env)
    video_ids: set[str] = set()
    with httpx.Client(base_url=first.url, timeout=15) as client:
        endpoint = register(client, f"{receiver.url}/hook")
        for n in range(6):
            response = client.post(
                "/api/video/tasks",
                json={"prompt": f"crash {n}", "webhookUrl": f"{receiver.url}/task"},
            )
            assert response.status_code == 201, response.text
            video_ids.add(response.json()["data"]["videoId"])
        until(lambda: len(receiver.receipts) >= 6, 10, "failing deliveries")
        receiver.default = "slow"  # answers after vidgate gave up waiting
        time.sleep(1.5)
        receiver.default = "ok"
        time.sleep(0.4)
    first.kill()  # SIGKILL: attempts in flight are neither finished nor recorded
    receiver.default = "drop"
    time.sleep(0.5)
    receiver.default = "ok"
    second = start_vidgate(db=db, **env)
    with httpx.Client(base_url=second.url, timeout=15) as client:

        def all_done() -> bool:
            tasks = [client.get(f"/api/video/tasks/{v}").json()["data"] for v in video_ids]
            if any(t["status"] not in TERMINAL for t in tasks):
                return False
            log = deliveries(client, endpoint["id"])
            return bool(log) and all(d["status"] == "succeeded" for d in log)

        until(all_done, 60, "every task to end and every delivery to succeed")
        events = stored_events(f"sqlite:///{db}", video_ids)
        log = deliveries(client, endpoint["id"])
        task_secret = client.get("/api/webhooks/task-secret").json()["data"]["secret"]
        # The per-task URL: all delivered too.
        until(
            lambda: (
                {
                    (r.message["data"]["videoId"], r.message["type"], r.message["data"]["progress"])
                    for r in receiver.on("/task")
                    if r.answered == 200
                }
                >= {(e["videoId"], e["type"], e["payload"]["progress"]) for e in events}
            ),
            30,
            "every event at the task URL",
        )
    assert len(events) >= 2 * len(video_ids)
    assert sorted(d["eventId"] for d in log) == [e["id"] for e in events]
    check_delivered(events, receiver.on("/hook"), log, endpoint["secret"])
    for receipt in receiver.on("/task"):
        receipt.verify(task_secret)
    retried = [d for d in log if d["attempts"] > 1]
    assert retried, "the receiver was down: some deliveries must have been retried"
    assert any(r.answered is None for r in receiver.on("/hook")), "no slow answer was tried"
