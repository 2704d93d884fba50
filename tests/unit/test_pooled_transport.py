"""The upstream HTTP client's transport keeps telling "never sent" from "maybe received".

``HttpUpstream.call`` decides from the httpx exception whether a failed create may have
reached the upstream (a resend could then submit twice): these run real sockets on
loopback through ``PooledTransport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from vidgate.providers.base import UpstreamUnavailable
from vidgate.providers.http import HttpUpstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def upstream_on(
    handler: Handler, *, read_timeout: float = 2, credentials: dict[str, str] | None = None
) -> AsyncIterator[HttpUpstream]:
    """An ``HttpUpstream`` in front of a loopback server answering with ``handler``."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = HttpUpstream(
        "t",
        f"http://127.0.0.1:{port}",
        timeout=read_timeout,
        max_concurrency=4,
        credentials=credentials,
    )
    try:
        yield upstream
    finally:
        await upstream.aclose()
        server.close()
        await server.wait_closed()


async def failure_of(upstream: HttpUpstream) -> UpstreamUnavailable:
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream.call("POST", "/videos", json={"prompt": "x"})
    return caught.value


async def test_a_refused_connection_was_certainly_not_received() -> None:
    upstream = HttpUpstream("t", f"http://127.0.0.1:{_closed_port()}", timeout=2, max_concurrency=4)
    try:
        failure = await failure_of(upstream)
    finally:
        await upstream.aclose()
    assert failure.maybe_received is False
    assert "cannot connect" in str(failure)


async def test_a_connection_closed_after_the_request_may_have_been_received() -> None:
    async def read_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with upstream_on(read_then_hang_up) as upstream:
        assert (await failure_of(upstream)).maybe_received is True


async def test_a_body_cut_short_may_have_been_received() -> None:
    async def half_an_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b'Content-Length: 100\r\n\r\n{"id": ')
        await writer.drain()
        writer.close()

    async with upstream_on(half_an_answer) as upstream:
        assert (await failure_of(upstream)).maybe_received is True


async def test_a_silent_upstream_times_out_as_maybe_received() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            await asyncio.sleep(5)
        finally:
            writer.close()

    async with upstream_on(never_answer, read_timeout=0.3) as upstream:
        failure = await failure_of(upstream)
    assert failure.maybe_received is True
    assert "timed out" in str(failure)


async def test_answers_and_credentials_pass_through() -> None:
    seen: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        body = b'{"id": "video_1", "status": "queued"}'
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    async with upstream_on(echo, credentials={"Authorization": "Bearer k"}) as upstream:
        answer = await upstream.call("GET", "/videos/video_1")
    assert (answer.status, answer.body) == (201, {"id": "video_1", "status": "queued"})
    assert answer.reason == "Created"
    assert b"\r\nauthorization: bearer k\r\n" in seen[0].lower()
