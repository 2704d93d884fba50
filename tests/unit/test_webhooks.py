"""The webhook core against the in-memory store: dispatch with an overlap, per-task order,
leases, retry policy, outcomes, signatures, the thin body and the send-time address check."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from vidgate.domain.errors import ValidationFailed
from vidgate.domain.events import EventType, TaskEvent
from vidgate.store import webhooks as port
from vidgate.testing.webhooks import MemoryWebhookStore
from vidgate.webhooks import egress, payload, signing
from vidgate.webhooks.dispatcher import Dispatcher
from vidgate.webhooks.sender import RetryPolicy, Sender, outcome_of
from vidgate.webhooks.service import WebhookService

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def endpoint(**changes: Any) -> port.Endpoint:
    values: dict[str, Any] = {
        "id": "wh_1",
        "user_id": "u1",
        "url": "https://hooks.example.com/a",
        "event_types": None,
        "secret": signing.new_secret(),
        "created_at": datetime(2020, 1, 1, tzinfo=UTC),
    }
    values.update(changes)
    return port.Endpoint(**values)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- dispatch -----------------------------------------------------------------------------


async def test_an_event_that_becomes_visible_late_is_still_dispatched_once() -> None:
    store = MemoryWebhookStore()
    await store.add_endpoint(endpoint())
    clock = Clock()
    dispatcher = Dispatcher(store, overlap_seconds=10, clock=clock)
    store.add_event(2, "video_b")  # id 1 is taken but not yet committed (PostgreSQL)
    assert await dispatcher.run_once() == 1
    clock.now += 3
    store.add_event(1, "video_a")  # committed now, below what was read
    assert await dispatcher.run_once() == 1
    clock.now += 3
    assert await dispatcher.run_once() == 0  # read again, delivered once
    assert sorted(d.event_id for d in store.rows.values()) == [1, 2]
    assert store.saved_cursor == 0  # no pass is `overlap` old yet
    clock.now += 20
    await dispatcher.run_once()
    assert store.saved_cursor == 2  # the cursor trails by the overlap


class CountingStore(MemoryWebhookStore):
    """Counts the whole events handed to the dispatcher."""

    def __init__(self) -> None:
        super().__init__()
        self.read_whole = 0

    async def events_after(self, after_id: int, limit: int) -> list[port.DispatchEvent]:
        found = await super().events_after(after_id, limit)
        self.read_whole += len(found)
        return found

    async def events_by_ids(self, ids: Any) -> list[port.DispatchEvent]:
        found = await super().events_by_ids(ids)
        self.read_whole += len(found)
        return found


async def test_passes_read_whole_only_new_events_and_ids_below_them() -> None:
    store = CountingStore()
    await store.add_endpoint(endpoint())
    clock = Clock()
    dispatcher = Dispatcher(store, overlap_seconds=10, gap_seconds=1, clock=clock)
    for n in range(2, 52):
        store.add_event(n, "video_a")
    assert await dispatcher.run_once() == 50
    for _ in range(5):  # wake-ups within the overlap window: nothing is read whole again
        clock.now += 0.5
        assert await dispatcher.run_once() == 0
    assert store.read_whole == 50
    store.add_event(1, "video_b")  # committed late, below the high-water mark
    clock.now += 1
    assert await dispatcher.run_once() == 1
    assert store.read_whole == 51


async def test_a_restarted_dispatcher_reads_from_the_cursor_without_doubling() -> None:
    store = MemoryWebhookStore()
    await store.add_endpoint(endpoint())
    for n in (1, 2, 3):
        store.add_event(n, "video_a")
    await Dispatcher(store, overlap_seconds=0).run_once()
    assert len(store.rows) == 3
    again = Dispatcher(store, overlap_seconds=0)
    store.add_event(4, "video_a")
    assert await again.run_once() == 1
    assert len(store.rows) == 4


async def test_filters_registration_time_and_the_tasks_own_url() -> None:
    store = MemoryWebhookStore()
    await store.add_endpoint(endpoint(id="wh_done", event_types=("taskCompleted",)))
    late = datetime.fromtimestamp(2_100_000_000, UTC)
    await store.add_endpoint(endpoint(id="wh_late", created_at=late))
    await store.add_endpoint(endpoint(id="wh_other", user_id="u2"))
    store.add_event(1, "video_a", webhook_url="https://task.example.com/x")
    store.add_event(2, "video_a", kind="taskCompleted", webhook_url="https://task.example.com/x")
    await Dispatcher(store).run_once()
    got = sorted((d.target, d.event_id) for d in store.rows.values())
    assert got == [("task:video_a", 1), ("task:video_a", 2), ("wh_done", 2)]
    assert store.task_secrets["u1"].secret.startswith("whsec_")


# -- claims, order and leases -------------------------------------------------------------


async def test_a_tasks_later_event_waits_for_the_earlier_and_leases_are_exclusive() -> None:
    store = MemoryWebhookStore()
    await store.add_endpoint(endpoint())
    store.add_event(1, "video_a")
    store.add_event(2, "video_a")
    store.add_event(3, "video_b")
    await Dispatcher(store).run_once()
    later = datetime.now(UTC) + timedelta(seconds=1)
    first = await store.claim(owner="w1", now=later, until=later + timedelta(seconds=30), limit=10)
    assert sorted(c.delivery.event_id for c in first) == [1, 3]  # 2 waits for 1
    second = await store.claim(owner="w2", now=later, until=later + timedelta(seconds=30), limit=10)
    assert second == []  # leased to w1
    one = next(c for c in first if c.delivery.event_id == 1)
    done = port.Outcome(status=port.SUCCEEDED, at=later, status_code=200)
    assert not await store.finish(one, owner="w2", outcome=done)  # not w2's lease
    assert await store.finish(one, owner="w1", outcome=done)
    third = await store.claim(owner="w2", now=later, until=later + timedelta(seconds=30), limit=10)
    assert [c.delivery.event_id for c in third] == [2]
    # A lease that ran out is taken over with the next attempt number; the old holder's
    # outcome is then refused.
    expired = later + timedelta(days=2)
    taken = await store.claim(
        owner="w3", now=expired, until=expired + timedelta(seconds=30), limit=10
    )
    assert {c.delivery.event_id: c.delivery.attempts for c in taken} == {2: 2, 3: 2}
    assert not await store.finish(third[0], owner="w2", outcome=done)


# -- retries and outcomes -----------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_gives_up_after_the_window() -> None:
    policy = RetryPolicy(base_seconds=5, max_seconds=3600, window_seconds=24 * 3600)
    for attempts, ceiling in ((1, 5), (2, 10), (3, 20), (12, 3600)):
        low = policy.next_attempt(attempts=attempts, created_at=NOW, now=NOW, rng=lambda: 0.0)
        high = policy.next_attempt(attempts=attempts, created_at=NOW, now=NOW, rng=lambda: 1.0)
        assert low == NOW + timedelta(seconds=ceiling / 2)
        assert high == NOW + timedelta(seconds=ceiling)
    late = NOW + timedelta(hours=23, minutes=59)
    assert policy.next_attempt(attempts=20, created_at=NOW, now=late) is None


def claimed(attempts: int = 1) -> port.Claimed:
    delivery = port.Delivery(
        id="msg_1",
        target="wh_1",
        endpoint_id="wh_1",
        user_id="u1",
        video_id="video_a",
        event_id=1,
        event_type="taskProgress",
        url="https://hooks.example.com/a",
        body="{}",
        attempts=attempts,
        next_attempt_at=NOW,
        created_at=NOW,
    )
    return port.Claimed(delivery=delivery, secrets=("whsec_AAAA",))


@pytest.mark.parametrize(
    ("answer", "status", "disabled"),
    [
        (egress.Answer(status_code=204), port.SUCCEEDED, False),
        (egress.Answer(status_code=410), port.FAILED, True),
        (egress.Answer(status_code=302), port.PENDING, False),
        (egress.Answer(status_code=500), port.PENDING, False),
        (egress.Answer(status_code=None, error="no answer within 10 s"), port.PENDING, False),
    ],
)
def test_outcomes(answer: egress.Answer, status: str, disabled: bool) -> None:
    outcome = outcome_of(claimed(), answer, policy=RetryPolicy(), now=NOW)
    assert outcome.status == status
    assert (outcome.disable_target is not None) is disabled
    if answer.status_code == 302:
        assert outcome.error is not None and "redirect" in outcome.error
    if status == port.PENDING:
        assert outcome.next_attempt_at is not None and outcome.next_attempt_at > NOW


def test_a_failure_past_the_window_gives_up() -> None:
    policy = RetryPolicy(base_seconds=5, max_seconds=60, window_seconds=60)
    outcome = outcome_of(
        claimed(attempts=9),
        egress.Answer(status_code=503),
        policy=policy,
        now=NOW + timedelta(seconds=60),
    )
    assert outcome.status == port.FAILED and outcome.error == "gave up: HTTP 503"


async def test_a_delivery_whose_endpoint_is_gone_is_cancelled_not_sent() -> None:
    store = MemoryWebhookStore()
    item = claimed()
    store.rows[item.delivery.id] = item.delivery
    later = datetime.now(UTC)
    (lease,) = await store.claim(
        owner="me", now=later, until=later + timedelta(seconds=30), limit=1
    )
    assert lease.secrets == ()  # no such endpoint

    class NoPost:
        async def post(self, *args: object, **kwargs: object) -> egress.Answer:
            raise AssertionError("must not send")

    sender = Sender(store, NoPost(), owner="me", policy=RetryPolicy())  # type: ignore[arg-type]
    outcome = await sender.send(lease)
    assert outcome.status == port.CANCELLED
    assert store.rows["msg_1"].status == port.CANCELLED


# -- signatures and the body --------------------------------------------------------------


def test_headers_verify_with_standardwebhooks_and_rotation_signs_twice() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    assert len(new) > len("whsec_") + 40
    body = '{"type":"taskCompleted"}'
    headers = signing.headers(msg_id="msg_1", at=datetime.now(UTC), body=body, keys=(new, old))
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body.encode(), headers) == {"type": "taskCompleted"}
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(signing.new_secret()).verify(body, headers)


def test_the_body_is_thin() -> None:
    event = TaskEvent(
        id=7,
        video_id="video_a",
        type=EventType.COMPLETED,
        payload={
            "videoId": "video_a",
            "externalVideoId": "ext_1",
            "status": "completed",
            "progress": 100,
            "message": "done",
            "result": {"videoUrl": "https://cdn.example.com/a.mp4"},
            "eventId": 7,
        },
        timestamp_ms=1_763_027_892_123,
        task_version=3,
    )
    message = json.loads(payload.body(event))
    assert message == {
        "type": "taskCompleted",
        "timestamp": "2025-11-13T09:58:12.123Z",
        "data": {
            "videoId": "video_a",
            "externalVideoId": "ext_1",
            "status": "completed",
            "progress": 100,
            "result": {"videoUrl": "https://cdn.example.com/a.mp4"},
        },
    }


# -- addresses ----------------------------------------------------------------------------


def resolving_to(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """DNS, the process edge: every name resolves to ``address``."""

    async def getaddrinfo(
        self: asyncio.AbstractEventLoop, host: str, port: int, **_: object
    ) -> list[Any]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)


async def test_a_name_resolving_to_a_private_address_is_refused_at_send_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolving_to(monkeypatch, "10.0.0.7")
    with pytest.raises(egress.Refused, match="not public"):
        await egress.resolve("https://hooks.example.com/a", allow_private=False)
    for url in ("http://127.0.0.1/x", "http://[::1]/x", "http://localhost/x"):
        with pytest.raises(egress.Refused):
            await egress.resolve(url, allow_private=False)


async def test_link_local_addresses_are_refused_even_when_private_ones_are_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolving_to(monkeypatch, "169.254.169.254")  # a cloud metadata service
    with pytest.raises(egress.Refused, match="link-local"):
        await egress.resolve("http://hooks.internal/a", allow_private=True)
    for address in ("fe80::1", "::ffff:169.254.169.254"):
        resolving_to(monkeypatch, address)
        with pytest.raises(egress.Refused, match="link-local"):
            await egress.resolve("http://hooks.internal/a", allow_private=True)
    resolving_to(monkeypatch, "10.0.0.7")
    target, _, _ = await egress.resolve("http://hooks.internal/a", allow_private=True)
    assert target == "http://10.0.0.7/a"


async def test_the_checked_address_is_the_one_connected_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolving_to(monkeypatch, "93.184.215.14")
    target, host, name = await egress.resolve(
        "https://hooks.example.com:8443/in?x=1", allow_private=False
    )
    assert (target, host, name) == (
        "https://93.184.215.14:8443/in?x=1",
        "hooks.example.com:8443",
        "hooks.example.com",
    )
    resolving_to(monkeypatch, "2606:4700::1")
    target, _, _ = await egress.resolve("http://hooks.example.com/", allow_private=False)
    assert target == "http://[2606:4700::1]/"
    target, _, _ = await egress.resolve("http://127.0.0.1:9000/", allow_private=True)
    assert target == "http://127.0.0.1:9000/"


async def test_registration_refuses_bad_urls_and_unknown_types() -> None:
    service = WebhookService(MemoryWebhookStore(), allow_private=False)
    for url in ("ftp://example.com/", "http://10.0.0.1/", "https://example.com/" + "a" * 2048):
        with pytest.raises(ValidationFailed):
            await service.register("u1", url=url, event_types=None)
    for types in (["taskDone"], []):
        with pytest.raises(ValidationFailed, match="eventTypes"):
            await service.register("u1", url="https://93.184.215.14/", event_types=types)
    made = await service.register(
        "u1", url="https://93.184.215.14/", event_types=["taskFailed", "taskCompleted"]
    )
    assert made.event_types == ("taskCompleted", "taskFailed")


async def test_a_rotated_task_secret_signs_beside_the_new_one_for_a_day() -> None:
    store = MemoryWebhookStore()
    service = WebhookService(store, allow_private=False)
    first = await service.task_secret("u1")
    assert (await service.task_secret("u1")).secret == first.secret  # made once
    rotated = await service.rotate_task_secret("u1")
    assert rotated.secret != first.secret and rotated.previous_secret == first.secret
    assert rotated.previous_until is not None
    now = datetime.now(UTC)
    keys = port.signing_secrets(
        rotated.secret, rotated.previous_secret, rotated.previous_until, now
    )
    assert keys == (rotated.secret, first.secret)
    after_a_day = now + timedelta(hours=24, seconds=1)
    assert port.signing_secrets(
        rotated.secret, rotated.previous_secret, rotated.previous_until, after_a_day
    ) == (rotated.secret,)


# -- attempts that go wrong in other ways -------------------------------------------------


async def leased(store: MemoryWebhookStore) -> port.Claimed:
    """``claimed()``'s delivery in ``store``, its endpoint there, leased for one attempt."""
    await store.add_endpoint(endpoint())
    store.rows["msg_1"] = claimed(attempts=0).delivery
    later = datetime.now(UTC)
    (lease,) = await store.claim(
        owner="me", now=later, until=later + timedelta(seconds=30), limit=1
    )
    assert lease.secrets
    return lease


async def test_an_attempt_that_raises_is_a_failed_attempt_retried_not_a_stuck_lease() -> None:
    store = MemoryWebhookStore()
    lease = await leased(store)

    class Broken:
        async def post(self, *args: object, **kwargs: object) -> egress.Answer:
            raise UnicodeEncodeError("ascii", "ü", 0, 1, "not ascii")

    sender = Sender(store, Broken(), owner="me", policy=RetryPolicy())  # type: ignore[arg-type]
    outcome = await sender.send(lease)
    assert outcome.status == port.PENDING and outcome.next_attempt_at is not None
    row = store.rows["msg_1"]
    assert row.status == port.PENDING and row.last_error == "UnicodeEncodeError"
    assert "msg_1" not in store.leases  # recorded: the retry policy (and its window) applies


async def test_a_name_that_does_not_resolve_now_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def getaddrinfo(self: asyncio.AbstractEventLoop, *args: object, **_: object) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    store = MemoryWebhookStore()
    lease = await leased(store)
    poster = egress.Poster(timeout_seconds=2, allow_private=False)
    try:
        outcome = await Sender(store, poster, owner="me", policy=RetryPolicy()).send(lease)
    finally:
        await poster.aclose()
    assert outcome.status == port.PENDING, outcome  # a DNS hiccup loses no delivery
    assert outcome.error is not None and "cannot resolve" in outcome.error


async def test_an_internationalised_name_is_sent_in_its_ascii_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.receiver import Receiver

    resolving_to(monkeypatch, "127.0.0.1")
    poster = egress.Poster(timeout_seconds=5, allow_private=True)
    try:
        with Receiver() as receiver:
            port_number = receiver.server.server_address[1]
            answer = await poster.post(
                f"http://bücher.example:{port_number}/hook", body="{}", headers={}
            )
            assert answer.status_code == 200, answer
            (receipt,) = receiver.on("/hook")
    finally:
        await poster.aclose()
    assert receipt.headers["host"] == f"xn--bcher-kva.example:{port_number}"
    _, _, name = await egress.resolve("https://Bücher.example/", allow_private=True)
    assert name == "xn--bcher-kva.example"


async def test_no_connection_is_reused_for_another_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two names on one address: a kept connection (pooled by address) would carry the
    second delivery over a TLS session whose certificate was checked for the first name."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    peers: list[tuple[str, int]] = []

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps the connection open for the next request

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            peers.append(self.client_address)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    resolving_to(monkeypatch, "127.0.0.1")
    poster = egress.Poster(timeout_seconds=5, allow_private=True)
    try:
        for name in ("one.example", "two.example"):
            url = f"http://{name}:{server.server_address[1]}/"
            answer = await poster.post(url, body="{}", headers={})
            assert answer.status_code == 204
    finally:
        await poster.aclose()
        server.shutdown()
        server.server_close()
    assert len(peers) == 2 and peers[0] != peers[1]  # a connection of its own each


async def test_ids_this_server_never_made_are_missing_not_a_database_error() -> None:
    from vidgate.store.base import StoreUnavailable
    from vidgate.webhooks.errors import DeliveryNotFound, WebhookNotFound

    class LikePostgres(MemoryWebhookStore):
        """PostgreSQL refuses a NUL in a text value (read as the database being down)."""

        async def get_endpoint(self, endpoint_id: str) -> port.Endpoint | None:
            if "\x00" in endpoint_id:
                raise StoreUnavailable("invalid byte sequence for encoding UTF8: 0x00")
            return await super().get_endpoint(endpoint_id)

        async def replay(
            self, endpoint_id: str, delivery_id: str, *, at: datetime
        ) -> port.Delivery | None:
            if "\x00" in delivery_id:
                raise StoreUnavailable("invalid byte sequence for encoding UTF8: 0x00")
            return await super().replay(endpoint_id, delivery_id, at=at)

    service = WebhookService(LikePostgres(), allow_private=True)
    with pytest.raises(WebhookNotFound):
        await service.delete("u1", "wh_\x00")
    made = await service.register("u1", url="http://127.0.0.1/hook", event_types=None)
    with pytest.raises(DeliveryNotFound):
        await service.replay("u1", made.id, "msg_\x00")
