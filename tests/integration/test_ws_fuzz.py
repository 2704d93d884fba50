"""Hostile WebSocket input against a real ``vidgate serve``.

Every frame, however broken, gets an answer: an ``error`` message (after which the
connection still answers a ping), or a close with a meaningful code. Never a silent
connection, an internal-error close (1011), a dropped TCP connection (1006) or a traceback
in the server's log. Meanwhile a client watching a task keeps receiving its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection as SyncConnection
from websockets.sync.client import connect as sync_connect

from tests.support import VidgateServer, launch_vidgate

MAX_MESSAGE = 64 * 1024  # VIDGATE_WS_MAX_MESSAGE_BYTES, default
MISSING = "video_00000000-0000-4000-8000-000000000000"
ANSWER_SECONDS = 5.0
LATE_SECONDS = 1.0
# Close codes that are an answer: unsupported data, invalid payload, policy, too big.
ANSWER_CLOSES = {1003, 1007, 1008, 1009}
KNOWN_TYPES = {
    "error",
    "pong",
    "subscribed",
    "unsubscribed",
    "taskProgress",
    "taskCompleted",
    "taskFailed",
    "taskCancelled",
}
TERMINAL = {"taskCompleted", "taskFailed", "taskCancelled"}
PING = json.dumps({"type": "ping"})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    """Demo mode with 4 s jobs: long enough for a fuzz round to overlap one."""
    server = launch_vidgate(tmp_path_factory.mktemp("ws-fuzz"), job_seconds=4.0)
    yield server
    server.stop()


@dataclass
class Outcome:
    """What the server did with one hostile frame."""

    codes: list[str] = field(default_factory=list)  # error codes received
    others: list[str] = field(default_factory=list)  # other message types, pongs aside
    ponged: bool = False  # the connection still answered a ping afterwards
    closed: int | None = None  # the close code, if the server closed
    silent: bool = False  # neither an answer nor a close

    def describe(self) -> str:
        return (
            f"codes={self.codes} others={self.others} ponged={self.ponged} "
            f"closed={self.closed} silent={self.silent}"
        )


async def _read_answers(ws: ClientConnection, outcome: Outcome) -> None:
    """Read until the pong and one other message, or the pong and a quiet second:
    subscriptions are answered concurrently, so their answer may follow the pong."""
    while not (outcome.ponged and (outcome.codes or outcome.others)):
        try:
            wait = LATE_SECONDS if outcome.ponged else ANSWER_SECONDS
            message = json.loads(await asyncio.wait_for(ws.recv(), wait))
        except TimeoutError:
            if outcome.ponged:
                return
            raise
        kind = message.get("type")
        assert kind in KNOWN_TYPES, message
        if kind == "pong":
            outcome.ponged = True
        elif kind == "error":
            assert message["payload"]["message"], message
            assert isinstance(message["timestamp"], int), message
            outcome.codes.append(message["payload"]["code"])
        else:
            outcome.others.append(kind)


async def send_hostile(url: str, frame: str | bytes, *, compression: str | None = None) -> Outcome:
    """Send ``frame`` on a fresh connection, then a ping; report what came back."""
    outcome = Outcome()
    async with connect(url, compression=compression, max_size=None) as ws:
        try:
            await ws.send(frame)
            await ws.send(PING)
            await _read_answers(ws, outcome)
        except ConnectionClosed as closed:
            outcome.closed = closed.rcvd.code if closed.rcvd is not None else 1006
        except TimeoutError:
            outcome.silent = True
    return outcome


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _subscribe(video_id: str) -> str:
    """A subscribe message with ``video_id`` spliced in as raw JSON text."""
    return '{"type": "subscribe", "videoId": ' + video_id + "}"


# Error codes (or message types) that count as the right answer; a close with one of the
# ANSWER_CLOSES codes always may.
INVALID = {"INVALID_MESSAGE"}
UNKNOWN = {"UNKNOWN_MESSAGE_TYPE", "INVALID_MESSAGE"}
NOT_FOUND = {"TASK_NOT_FOUND", "INVALID_MESSAGE"}
UNSUBSCRIBED = {"unsubscribed", "INVALID_MESSAGE"}  # unsubscribing is idempotent

FUZZ: list[tuple[str, str | bytes, set[str]]] = [
    # malformed JSON
    ("not json", "not json", INVALID),
    ("truncated", '{"type": "subscribe", "videoId": ', INVALID),
    ("empty", "", INVALID),
    ("nul", "\x00", INVALID),
    ("json array", "[1, 2]", INVALID),
    ("json string", '"subscribe"', INVALID),
    ("json null", "null", INVALID),
    ("json infinity", "1e999", INVALID),
    ("trailing garbage", '{"type": "ping"} {"type": "ping"}', INVALID),
    # binary frames
    ("binary, invalid utf-8", b"\xff\xfe\xfd binary", INVALID),
    ("binary, overlong utf-8", b'{"type": "\xc0\xaf"}', UNKNOWN),
    ("binary, every byte", bytes(range(256)), INVALID),
    # unknown types
    ("unknown type", '{"type": "dance"}', UNKNOWN),
    ("no type", "{}", UNKNOWN),
    ("null type", '{"type": null}', UNKNOWN),
    ("list type", '{"type": ["ping"]}', UNKNOWN),
    ("object type", '{"type": {"ping": 1}}', UNKNOWN),
    ("NaN type", '{"type": NaN}', UNKNOWN),
    ("long type", json.dumps({"type": "x" * 60_000}), UNKNOWN),
    # wrong field types and values
    ("number videoId", _subscribe("7"), INVALID),
    ("null videoId", _subscribe("null"), INVALID),
    ("list videoId", _subscribe('["a"]'), INVALID),
    ("object videoId", _subscribe('{"$ne": ""}'), INVALID),
    ("bool videoId", '{"type": "unsubscribe", "videoId": true}', INVALID),
    ("empty videoId", _subscribe('""'), INVALID),
    ("huge number videoId", _subscribe("9" * 5000), INVALID),
    ("missing task", _subscribe(json.dumps(MISSING)), NOT_FOUND),
    ("long videoId", _subscribe(json.dumps("video_" + "a" * 50_000)), NOT_FOUND),
    ("sql videoId", _subscribe(json.dumps("video_' OR 1=1 --")), NOT_FOUND),
    # lone surrogates: valid JSON escapes, not encodable as UTF-8 when echoed back
    ("lone surrogate videoId", _subscribe('"video_\\ud800"'), NOT_FOUND),
    ("lone surrogate unsubscribe", '{"type": "unsubscribe", "videoId": "\\udfff"}', UNSUBSCRIBED),
    ("lone surrogate type", '{"type": "\\ud800"}', UNKNOWN),
    # deep nesting, under the size limit
    ("nested arrays", _nested(30_000), INVALID),
    ("nested objects", '{"a":' * 9_000 + "1" + "}" * 9_000, INVALID),
    ("nested in a subscribe", _subscribe(_nested(20_000)), INVALID),
]


@pytest.mark.parametrize(
    ("frame", "expected"), [(f, e) for _, f, e in FUZZ], ids=[name for name, _, _ in FUZZ]
)
async def test_hostile_frame_gets_an_answer(
    server: VidgateServer, frame: str | bytes, expected: set[str]
) -> None:
    outcome = await send_hostile(server.ws_url, frame)
    assert not outcome.silent, f"no answer and no close: {outcome.describe()}"
    if outcome.closed is not None:
        assert outcome.closed in ANSWER_CLOSES, outcome.describe()
    else:
        assert outcome.ponged
        answers = {*outcome.codes, *outcome.others}
        assert answers, f"no answer but the pong: {outcome.describe()}"
        assert answers <= expected, outcome.describe()


@pytest.mark.parametrize(
    ("frame", "compression"),
    [
        ("x" * (MAX_MESSAGE + 1), None),
        (b"\x00" * (MAX_MESSAGE + 1), None),
        (json.dumps({"type": "subscribe", "videoId": "v" * (4 * MAX_MESSAGE)}), None),
        # Compresses to about a kilobyte: the limit holds for the inflated message.
        ("a" * (16 * MAX_MESSAGE), "deflate"),
    ],
    ids=["text", "binary", "json", "deflate bomb"],
)
async def test_oversized_frame_is_refused(
    server: VidgateServer, frame: str | bytes, compression: str | None
) -> None:
    log_start = len(server.output())
    outcome = await send_hostile(server.ws_url, frame, compression=compression)
    if outcome.closed is not None:
        # The server sends its 1009 and closes at once, without reading the rest of the
        # frame; the unread bytes make the kernel reset the connection, which can beat the
        # close frame to this client (1006). Either way nothing crashed:
        assert outcome.closed in (1009, 1006), outcome.describe()
        assert "Traceback" not in server.output()[log_start:]
    else:
        assert outcome.codes == ["MESSAGE_TOO_LARGE"], outcome.describe()
    assert (await send_hostile(server.ws_url, PING)).ponged


async def test_binary_frame_with_a_valid_message(server: VidgateServer) -> None:
    """A binary frame holding a well-formed message is read like text, or refused."""
    outcome = await send_hostile(server.ws_url, PING.encode())
    assert not outcome.silent
    assert outcome.closed in (None, 1003), outcome.describe()


async def test_fragmented_message_is_reassembled(server: VidgateServer) -> None:
    async with connect(server.ws_url) as ws:
        await ws.send(iter(['{"type"', ': "pi', 'ng"}']))
        reply = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_SECONDS))
    assert reply["type"] == "pong"


# ---------------------------------------------------------------- before authentication

JWT_SECRET = "ws-fuzz-secret-" + "f" * 40
AUTH_FUZZ: list[tuple[str, str | bytes]] = [
    ("not json", "not json"),
    ("binary", b"\xff\xfe"),
    ("not an auth message", PING),
    ("number token", '{"type": "auth", "token": 7}'),
    ("long token", json.dumps({"type": "auth", "token": "x" * 60_000})),
    ("lone surrogate token", '{"type": "auth", "token": "\\ud800"}'),
    ("nested arrays", _nested(30_000)),
    ("nested token", '{"type": "auth", "token": ' + _nested(20_000) + "}"),
]


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    server = launch_vidgate(
        tmp_path_factory.mktemp("ws-fuzz-jwt"),
        VIDGATE_AUTH_MODE="jwt",
        VIDGATE_JWT_SECRET=JWT_SECRET,
        VIDGATE_JWT_ISSUER="https://login.example.com/",
        VIDGATE_JWT_AUDIENCE="vidgate",
    )
    yield server
    server.stop()


@pytest.mark.parametrize("frame", [f for _, f in AUTH_FUZZ], ids=[n for n, _ in AUTH_FUZZ])
async def test_hostile_first_message_is_refused(
    jwt_server: VidgateServer, frame: str | bytes
) -> None:
    """Without a token on the URL the first message must authenticate: anything else is
    told why, then closed with 1008."""
    log_start = len(jwt_server.output())
    outcome = await send_hostile(jwt_server.ws_url, frame)
    assert outcome.closed in (1008, 1009), outcome.describe()
    assert not outcome.ponged
    assert "Traceback" not in jwt_server.output()[log_start:]


# ---------------------------------------------------------------- others keep being served


async def _watch(ws: ClientConnection, fuzzing: asyncio.Event) -> list[tuple[str, int, bool]]:
    """(type, progress, arrived while fuzzing) for every message until the task ends."""
    seen: list[tuple[str, int, bool]] = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        payload: dict[str, Any] = message["payload"]
        seen.append((message["type"], int(payload.get("progress", 0)), fuzzing.is_set()))
        if message["type"] in TERMINAL:
            assert message["type"] == "taskCompleted", message
            assert payload["result"]["videoUrl"], message
            assert payload["externalVideoId"], message
            return seen


async def _flood(url: str, count: int) -> int | None:
    """Send ``count`` garbage frames on one connection as fast as possible, reading the
    answers meanwhile. The number of answers, or None if the server closed with 1013:
    a client that sends faster than its answers drain is told to come back later."""
    garbage: list[str | bytes] = ["{", b"\xff", '{"type": 1}', "[]"]
    async with connect(url) as ws:

        async def read() -> int:
            answered = 0
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if message["type"] == "pong":
                    return answered
                assert message["payload"]["code"] in ("INVALID_MESSAGE", "UNKNOWN_MESSAGE_TYPE")
                answered += 1

        reader = asyncio.create_task(read())
        try:
            for number in range(count):
                await ws.send(garbage[number % len(garbage)])
            await ws.send(PING)
            return await reader
        except ConnectionClosed as closed:
            reader.cancel()
            assert closed.rcvd is not None and closed.rcvd.code == 1013, closed
            return None


async def test_watchers_keep_receiving_events_during_the_fuzz(server: VidgateServer) -> None:
    log_start = len(server.output())
    async with httpx.AsyncClient(base_url=server.url) as client:
        created = await client.post("/api/video/tasks", json={"prompt": "a fox, fuzzed"})
    assert created.status_code == 201
    video_id = created.json()["data"]["videoId"]

    fuzzing = asyncio.Event()
    async with connect(f"{server.ws_url}?videoId={video_id}") as watcher:
        first = json.loads(await asyncio.wait_for(watcher.recv(), ANSWER_SECONDS))
        assert first["type"] == "subscribed"
        watching = asyncio.create_task(_watch(watcher, fuzzing))

        fuzzing.set()
        started = time.monotonic()
        frames = [frame for _, frame, _ in FUZZ] + ["x" * (MAX_MESSAGE + 1)]
        outcomes = await asyncio.gather(
            *(send_hostile(server.ws_url, frame) for frame in frames * 2),
            _flood(server.ws_url, 200),
            _flood(server.ws_url, 3000),
            return_exceptions=True,
        )
        fuzz_seconds = time.monotonic() - started
        seen = await watching

    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert not failures, failures
    assert outcomes[-2] == 200, "a modest burst must be answered in full"
    progress = [p for kind, p, _ in seen if kind == "taskProgress"]
    assert progress == sorted(progress), seen
    during = [kind for kind, _, while_fuzzing in seen if while_fuzzing]
    assert "taskProgress" in during, f"nothing pushed while fuzzing ({fuzz_seconds:.1f}s): {seen}"
    assert seen[-1][0] == "taskCompleted"
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/healthz")).status_code == 200
    assert "Traceback" not in server.output()[log_start:]


# ---------------------------------------------------------------- generated frames

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "ping", ""]) | st.text(max_size=12)},
    optional={"videoId": json_values | st.just(MISSING), "extra": json_values},
)
frames = (
    messages.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=200)
)


class _Socket:
    """A synchronous connection, opened again when the server closes it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: SyncConnection | None = None
        self.stack = contextlib.ExitStack()

    def get(self) -> SyncConnection:
        if self.ws is None:
            self.ws = self.stack.enter_context(sync_connect(self.url, compression=None))
        return self.ws

    def close(self) -> None:
        self.stack.close()
        self.ws = None


def test_generated_frames_always_get_answers(server: VidgateServer) -> None:
    socket = _Socket(server.ws_url)
    log_start = len(server.output())

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frame=frames)
    def answered(frame: str | bytes) -> None:
        ws = socket.get()
        try:
            ws.send(frame)
            ws.send(PING)
            while True:
                message = json.loads(ws.recv(timeout=ANSWER_SECONDS))
                assert message.get("type") in KNOWN_TYPES, message
                if message["type"] == "error":
                    assert message["payload"]["code"] and message["payload"]["message"]
                if message["type"] == "pong":
                    return
        except ConnectionClosed as closed:
            socket.close()
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            assert code in ANSWER_CLOSES, f"closed with {code} after {frame!r}"

    try:
        answered()
    finally:
        socket.close()
    assert "Traceback" not in server.output()[log_start:]
