"""Edge protections of a real ``vidgate serve``: body limit, security headers, CORS, origins."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import VidgateServer, launch_vidgate

APP_ORIGIN = "https://app.example.com"
LIMIT = 256 * 1024  # the default VIDGATE_MAX_BODY_BYTES
TASKS = "/api/video/tasks"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    """Demo mode with one allowed CORS origin; everything else at its default."""
    server = launch_vidgate(tmp_path_factory.mktemp("hardening"), VIDGATE_CORS_ORIGINS=APP_ORIGIN)
    yield server
    server.stop()


def _host_port(server: VidgateServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert str(LIMIT) in body["error"]["message"]
    assert body["error"]["details"] == {"limitBytes": LIMIT}


def _prompt_body(size: int) -> bytes:
    return json.dumps({"prompt": "x" * size}).encode()


# ---------------------------------------------------------------- body size


def test_oversized_body_with_content_length(server: VidgateServer) -> None:
    body = _prompt_body(LIMIT + 1024)
    response = httpx.post(
        f"{server.url}{TASKS}", content=body, headers={"content-type": "application/json"}
    )
    _assert_too_large(response)


def test_declared_length_is_refused_before_the_body_is_sent(server: VidgateServer) -> None:
    """Only the headers go out; the answer comes at once, without waiting for 50 MB."""
    host, port = _host_port(server)
    request = (
        f"POST {TASKS} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            assert chunk, "connection closed without an answer"
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert b"connection: close" in rest.lower()


def test_oversized_chunked_body(server: VidgateServer) -> None:
    def chunks() -> Iterator[bytes]:
        body = _prompt_body(LIMIT + 1024)
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    response = httpx.post(
        f"{server.url}{TASKS}", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    _assert_too_large(response)


def test_body_under_the_limit_still_works(server: VidgateServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "a fox'
        yield b' in the snow"}'

    response = httpx.post(
        f"{server.url}{TASKS}", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text
    # A prompt over the prompt limit but under the body limit is a validation error.
    too_long = httpx.post(f"{server.url}{TASKS}", json={"prompt": "x" * 40_000})
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "VALIDATION_ERROR"


# ---------------------------------------------------------------- security headers

BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/static/app.js"),
        ("GET", "/healthz"),
        ("GET", TASKS),
        ("GET", f"{TASKS}/video_00000000-0000-4000-8000-000000000000"),
        ("POST", TASKS),  # 422
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/nothing-here"),  # 404
    ],
)
def test_security_headers_on_every_response(server: VidgateServer, method: str, path: str) -> None:
    response = httpx.request(method, f"{server.url}{path}", json={} if method == "POST" else None)
    for name, value in BASE_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    assert "camera=()" in response.headers["permissions-policy"]


def test_security_headers_on_a_413(server: VidgateServer) -> None:
    response = httpx.post(f"{server.url}{TASKS}", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    for name, value in BASE_HEADERS.items():
        assert response.headers.get(name) == value


def _csp(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css"])
def test_strict_csp_on_the_page(server: VidgateServer, path: str) -> None:
    host, port = _host_port(server)
    csp = _csp(httpx.get(f"{server.url}{path}"))
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'", f"ws://{host}:{port}", f"wss://{host}:{port}"]
    assert csp["media-src"] == ["'self'", "http:", "https:"]
    assert csp["img-src"] == ["'self'", "data:"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in value for values in csp.values() for value in values)


def test_hostile_host_header_cannot_extend_the_csp(server: VidgateServer) -> None:
    response = httpx.get(f"{server.url}/", headers={"host": "evil.example; script-src *"})
    csp = _csp(response)
    assert csp["connect-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/healthz", TASKS])
def test_no_page_csp_elsewhere(server: VidgateServer, path: str) -> None:
    """Swagger UI at /docs loads from a CDN; the page's policy would break it."""
    response = httpx.get(f"{server.url}{path}")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers


# ---------------------------------------------------------------- CORS

PREFLIGHT = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type, idempotency-key",
}


def test_preflight_from_a_listed_origin(server: VidgateServer) -> None:
    response = httpx.options(f"{server.url}{TASKS}", headers={"origin": APP_ORIGIN, **PREFLIGHT})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    methods = set(response.headers["access-control-allow-methods"].split(", "))
    assert methods == {"GET", "POST", "DELETE"}
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "access-control-allow-credentials" not in response.headers


def test_preflight_from_another_origin_is_refused(server: VidgateServer) -> None:
    response = httpx.options(
        f"{server.url}{TASKS}", headers={"origin": "https://evil.example", **PREFLIGHT}
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_preflight_for_an_unlisted_method_is_refused(server: VidgateServer) -> None:
    response = httpx.options(
        f"{server.url}{TASKS}",
        headers={"origin": APP_ORIGIN, "access-control-request-method": "PUT"},
    )
    assert response.status_code == 400


def test_simple_request_exposes_the_contract_headers(server: VidgateServer) -> None:
    listed = httpx.get(f"{server.url}{TASKS}", headers={"origin": APP_ORIGIN})
    assert listed.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = {h.strip() for h in listed.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"Idempotent-Replayed", "Retry-After", "Preference-Applied"}
    other = httpx.get(f"{server.url}{TASKS}", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_no_cross_origin_access_by_default(tmp_path: Path) -> None:
    server = launch_vidgate(tmp_path)
    try:
        response = httpx.options(
            f"{server.url}{TASKS}", headers={"origin": APP_ORIGIN, **PREFLIGHT}
        )
        assert "access-control-allow-origin" not in response.headers
        simple = httpx.get(f"{server.url}{TASKS}", headers={"origin": APP_ORIGIN})
        assert simple.status_code == 200
        assert "access-control-allow-origin" not in simple.headers
    finally:
        server.stop()


# ---------------------------------------------------------------- WebSocket origin


async def _ping(url: str, origin: str | None) -> None:
    async with connect(url, origin=origin) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "http://127.0.0.2", "http://localhost", "file://"],
)
async def test_websocket_from_a_foreign_origin_is_refused(
    server: VidgateServer, origin: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await _ping(server.ws_url, origin)
    assert refused.value.response.status_code == 403
    assert f"origin {origin!r} is not allowed" in server.output()


async def test_websocket_from_another_port_of_the_same_host_is_refused(
    server: VidgateServer,
) -> None:
    host, port = _host_port(server)
    with pytest.raises(InvalidStatus):
        await _ping(server.ws_url, f"http://{host}:{port + 1}")


async def test_websocket_from_the_same_host_is_accepted(server: VidgateServer) -> None:
    await _ping(server.ws_url, server.url)


async def test_websocket_from_a_listed_origin_is_accepted(server: VidgateServer) -> None:
    await _ping(server.ws_url, APP_ORIGIN)


async def test_websocket_without_origin_is_accepted(server: VidgateServer) -> None:
    """Programs (the CLI, SDKs) send no Origin; only browsers do, and browsers cannot lie."""
    await _ping(server.ws_url, None)


# -- inputReference: public http(s) addresses only --------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "http://127.0.0.1/cat.png",
        "http://localhost:8000/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/cat.png",
        "http://[::1]/cat.png",
        "http://[::ffff:192.168.0.1]/cat.png",
        "http://user:secret@203.0.113.9/cat.png",
        "http://does-not-exist.invalid/cat.png",
        "file:///etc/passwd",
    ],
)
def test_private_or_odd_input_references_are_refused(server: VidgateServer, reference: str) -> None:
    response = httpx.post(
        f"{server.url}/api/video/tasks",
        json={"prompt": "a cat", "inputReference": reference},
        timeout=10,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["fields"][0]["field"] == "inputReference"
    assert "secret" not in response.text
    listed = httpx.get(f"{server.url}/api/video/tasks", timeout=10).json()["data"]["items"]
    assert all(task["inputReference"] != reference for task in listed)


def test_private_input_references_can_be_allowed(tmp_path: Path) -> None:
    allowed = launch_vidgate(tmp_path, VIDGATE_INPUT_REFERENCE_ALLOW_PRIVATE="true")
    try:
        response = httpx.post(
            f"{allowed.url}/api/video/tasks",
            json={"prompt": "a cat", "inputReference": "http://127.0.0.1:9/cat.png"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        assert response.json()["data"]["inputReference"] == "http://127.0.0.1:9/cat.png"
    finally:
        allowed.stop()
