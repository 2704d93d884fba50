"""Authentication against real ``vidgate serve`` processes: API keys made and revoked with
the real ``vidgate keys`` commands, HS256 JWTs, REST and WebSocket, and a process log that
never shows a credential (not even one sent in a WebSocket URL)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.databases import DATABASES, query
from tests.support import VIDGATE, StartVidgate, VidgateServer, clean_env, free_port

SECRET = "integration-secret-" + "z" * 40
ISSUER = "https://login.example.com/"
AUDIENCE = "vidgate-tests"
KEY = re.compile(r"^key\s+(vg_[0-9a-f]{12}_[A-Za-z0-9_-]{43})$", re.MULTILINE)
KEY_ID = re.compile(r"^key id\s+([0-9a-f]{12})$", re.MULTILINE)


# ---------------------------------------------------------------------------------- helpers


def keys_cli(server: VidgateServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``vidgate keys ...`` on the server's database, as an operator runs it."""
    return subprocess.run(
        [VIDGATE, "keys", *args],
        env=clean_env(
            VIDGATE_DATABASE_URL=server.env["VIDGATE_DATABASE_URL"], VIDGATE_AUTH_MODE="apikey"
        ),
        cwd=server.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def create_key(server: VidgateServer, user: str, *options: str) -> tuple[str, str]:
    """``(key id, key)`` of a new key for ``user``, read from the command's output."""
    result = keys_cli(server, "create", "--user", user, *options)
    assert result.returncode == 0, result.stderr
    assert "cannot be shown again" in result.stdout
    key_id, key = KEY_ID.search(result.stdout), KEY.search(result.stdout)
    assert key_id is not None and key is not None, result.stdout
    assert key[1].startswith(f"vg_{key_id[1]}_")
    return key_id[1], key[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_401(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"success", "error"}
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def create_task(client: httpx.AsyncClient, token: str) -> str:
    response = await client.post(
        "/api/video/tasks", json={"prompt": "a red fox in snow"}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["videoId"])


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return message


async def ws_refused(
    url: str, code: str, *, headers: dict[str, str] | None = None, send: Any = None
) -> None:
    """The socket is told ``code`` in an error message, then closed with 1008 and ``code``."""
    async with connect(url, additional_headers=headers) as ws:
        if send is not None:
            await ws.send(json.dumps(send))
        error = await receive(ws)
        assert error["type"] == "error", error
        assert set(error) == {"type", "timestamp", "payload"}
        assert error["payload"]["code"] == code
        assert error["payload"]["message"]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert (ws.close_code, ws.close_reason) == (1008, code)


async def ws_subscribed(ws: ClientConnection, video_id: str) -> None:
    await ws.send(json.dumps({"type": "subscribe", "videoId": video_id}))
    message = await receive(ws)
    assert message["type"] == "subscribed", message
    assert message["payload"]["videoId"] == video_id


def assert_not_logged(server: VidgateServer, *secrets: str) -> str:
    log = server.output()
    for secret in secrets:
        assert secret not in log
    return log


# ---------------------------------------------------------------------------------- API keys


@pytest.fixture(params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    """The key store is SQL: the API-key test runs on SQLite and on PostgreSQL."""
    return str(request.param)


async def test_api_keys_on_rest_and_websocket(start_vidgate: StartVidgate) -> None:
    server = start_vidgate(VIDGATE_AUTH_MODE="apikey")
    alice_id, alice = create_key(server, "alice", "--label", "laptop")
    bob_id, bob = create_key(server, "bob", "--admin")

    listed = keys_cli(server, "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^{alice_id}\s+alice\s+laptop\s+no\s+\S+ \S+\s+-$", listed.stdout, re.M)
    assert re.search(rf"^{bob_id}\s+bob\s+-\s+yes\s+", listed.stdout, re.M)
    hashes = [
        row[0]
        for row in query(server.env["VIDGATE_DATABASE_URL"], "SELECT secret_hash FROM api_keys")
    ]
    assert len(hashes) == 2
    # The secret is all after vg_<keyId>_ (it may itself contain "_").
    for shown in (alice.split("_", 2)[2], bob.split("_", 2)[2], *hashes):
        assert shown not in listed.stdout

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200  # health stays open
        assert_401(await client.get("/api/video/tasks"), "AUTH_REQUIRED")
        assert_401(
            await client.get("/api/video/tasks", headers={"Authorization": f"Basic {alice}"}),
            "AUTH_REQUIRED",
        )
        assert_401(
            await client.get("/api/video/tasks", headers=bearer("vg_nope")), "API_KEY_INVALID"
        )
        forged = alice[: -len("AAAA")] + "AAAA"
        assert_401(await client.get("/api/video/tasks", headers=bearer(forged)), "API_KEY_INVALID")

        video_id = await create_task(client, alice)
        lower = await client.get(
            f"/api/video/tasks/{video_id}", headers={"authorization": f"bearer {alice}"}
        )
        assert lower.status_code == 200 and lower.json()["data"]["userId"] == "alice"
        theirs = await client.get(f"/api/video/tasks/{video_id}", headers=bearer(bob))
        assert theirs.status_code == 404
        assert theirs.json()["error"]["code"] == "TASK_NOT_FOUND"

        # WebSocket: key in the query, then in a first message; bob cannot follow alice's task.
        async with connect(f"{server.ws_url}?token={alice}&videoId={video_id}") as ws:
            assert (await receive(ws))["type"] == "subscribed"
        async with connect(server.ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": bob}))
            authenticated = await receive(ws)
            assert authenticated["type"] == "authenticated"
            assert authenticated["payload"] == {"userId": "bob"}
            assert isinstance(authenticated["timestamp"], int)
            await ws.send(json.dumps({"type": "subscribe", "videoId": video_id}))
            refused = await receive(ws)
            assert refused["type"] == "error"
            assert refused["payload"]["code"] == "TASK_NOT_FOUND"
        await ws_refused(f"{server.ws_url}?token=vg_nope", "API_KEY_INVALID")
        await ws_refused(server.ws_url, "AUTH_REQUIRED", send={"type": "ping"})

        revoked = keys_cli(server, "revoke", alice_id)
        assert revoked.returncode == 0, revoked.stderr
        assert f"revoked key {alice_id}" in revoked.stdout
        assert_401(
            await client.get(f"/api/video/tasks/{video_id}", headers=bearer(alice)),
            "API_KEY_REVOKED",
        )
        await ws_refused(server.ws_url, "API_KEY_REVOKED", headers=bearer(alice))
        assert (await client.get("/api/video/tasks", headers=bearer(bob))).status_code == 200

    assert keys_cli(server, "revoke", "000000000000").returncode == 2
    log = assert_not_logged(server, alice, bob, alice.split("_", 2)[2], *hashes)
    assert "token=[REDACTED]" in log  # uvicorn logged the WebSocket URL, redacted


# ---------------------------------------------------------------------------------- JWT


def token(secret: str = SECRET, **changes: Any) -> str:
    now = int(time.time())
    claims = {"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    claims.update(changes)
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize("database_kind", ["sqlite"])
async def test_jwt_on_rest_and_websocket(start_vidgate: StartVidgate) -> None:
    server = start_vidgate(
        VIDGATE_AUTH_MODE="jwt",
        VIDGATE_JWT_SECRET=SECRET,
        VIDGATE_JWT_ISSUER=ISSUER,
        VIDGATE_JWT_AUDIENCE=AUDIENCE,
        VIDGATE_USERS=json.dumps({"limited": {"requests_per_minute": 2}}),
    )
    valid, other = token(), token(sub="user-2")
    expired = token(exp=int(time.time()) - 120)
    forged = token(secret="not-the-secret-" + "q" * 40)
    elsewhere = token(aud="another-service")
    used = [valid, other, expired, forged, elsewhere]

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert_401(await client.get("/api/video/tasks"), "AUTH_REQUIRED")
        assert_401(await client.get("/api/video/tasks", headers=bearer(expired)), "TOKEN_EXPIRED")
        assert_401(await client.get("/api/video/tasks", headers=bearer(forged)), "TOKEN_INVALID")
        assert_401(
            await client.get("/api/video/tasks", headers=bearer(elsewhere)), "TOKEN_CLAIMS_INVALID"
        )
        video_id = await create_task(client, valid)
        mine = await client.get(f"/api/video/tasks/{video_id}", headers=bearer(valid))
        assert mine.json()["data"]["userId"] == "user-1"
        theirs = await client.get(f"/api/video/tasks/{video_id}", headers=bearer(other))
        assert theirs.json()["error"]["code"] == "TASK_NOT_FOUND"

    # Token in the query; in a header; in a first message.
    async with connect(f"{server.ws_url}?token={valid}&videoId={video_id}") as ws:
        assert (await receive(ws))["type"] == "subscribed"
    async with connect(server.ws_url, additional_headers=bearer(valid)) as ws:
        await ws_subscribed(ws, video_id)
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": valid}))
        assert (await receive(ws))["payload"] == {"userId": "user-1"}
        await ws_subscribed(ws, video_id)

    await ws_refused(f"{server.ws_url}?token={forged}", "TOKEN_INVALID")
    await ws_refused(f"{server.ws_url}?token={elsewhere}", "TOKEN_CLAIMS_INVALID")
    await ws_refused(server.ws_url, "TOKEN_EXPIRED", send={"type": "auth", "token": expired})
    await ws_refused(server.ws_url, "AUTH_REQUIRED", send={"type": "subscribe", "videoId": "x"})
    await ws_refused(server.ws_url, "AUTH_REQUIRED", headers={"Authorization": "Basic abc"})

    # The per-user request rate counts WebSocket connects too.
    limited = token(sub="limited")
    used.append(limited)
    for _ in range(2):
        async with connect(f"{server.ws_url}?token={limited}") as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert (await receive(ws))["type"] == "pong"
    await ws_refused(f"{server.ws_url}?token={limited}", "RATE_LIMITED")

    # The CLI client sends the token from --token or VIDGATE_TOKEN, on REST and WebSocket.
    submitted = client_cli(server, "submit", "a fox", "--wait", VIDGATE_TOKEN=valid)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert re.search(r"^status\s+COMPLETED$", submitted.stdout, re.MULTILINE)
    listed = client_cli(server, "list", "--json", "--token", other)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["items"] == []
    anonymous = client_cli(server, "status", video_id)
    assert anonymous.returncode == 2
    assert anonymous.stderr.startswith("error AUTH_REQUIRED")

    log = assert_not_logged(server, *used, SECRET)
    assert "token=[REDACTED]" in log


def client_cli(server: VidgateServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VIDGATE, *args, "--server", server.url],
        env=clean_env(**env),
        cwd=server.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ---------------------------------------------------------------------------------- startup


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VIDGATE, "serve", "--port", str(free_port()), *args],
        env=clean_env(VIDGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'v.db'}", **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_refuses_to_start_without_auth_on_a_public_address(tmp_path: Path) -> None:
    result = serve(tmp_path, "--host", "0.0.0.0")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "auth mode none" in result.stderr
    assert "VIDGATE_ALLOW_REMOTE_WITHOUT_AUTH=true" in result.stderr
    assert "Traceback" not in result.stderr

    result = serve(tmp_path, VIDGATE_AUTH_MODE="jwt", VIDGATE_JWT_SECRET=SECRET)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "VIDGATE_JWT_ISSUER" in result.stderr
    assert SECRET not in result.stdout + result.stderr
