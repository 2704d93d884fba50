"""Authentication: every path of the none, apikey and jwt authenticators, the bearer header,
the configuration checks, and the log filter that keeps credentials out of the output.

Keys and tokens are real: RSA keys from ``cryptography``, tokens signed with PyJWT, API
keys issued into a ``MemoryTaskStore``.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support import free_port
from vidgate import logs
from vidgate.auth.factory import (
    LocalAuthenticator,
    bearer_token,
    check_config,
    is_loopback,
    open_authenticator,
)
from vidgate.auth.keys import ApiKeyAuthenticator, issue_key
from vidgate.auth.tokens import JwtAuthenticator, jwks_client
from vidgate.config import ConfigError, Settings
from vidgate.domain.errors import AuthUnavailable, Unauthenticated, ValidationFailed
from vidgate.testing import MemoryTaskStore

ISSUER = "https://login.example.com/"
AUDIENCE = "vidgate"
SECRET = "s3cret-" + "x" * 60  # over HS256's 32-byte minimum (and HS512's 64)


@pytest.fixture(autouse=True)
def _no_vidgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings here come from the test alone, never from the environment."""
    import os

    for name in list(os.environ):
        if name.startswith("VIDGATE_"):
            monkeypatch.delenv(name)


def settings(**options: Any) -> Settings:
    return Settings(**options)


def jwt_settings(**options: Any) -> Settings:
    base: dict[str, Any] = {
        "auth_mode": "jwt",
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwt_leeway_seconds": 0,
    }
    return Settings(**{**base, **options})


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for user-1, with ``changes`` applied (a None value removes a claim)."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user-1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


async def refused(authenticator: Any, token: str | None) -> Unauthenticated:
    """The ``Unauthenticated`` raised for ``token``; checks it never repeats the token."""
    with pytest.raises(Unauthenticated) as caught:
        await authenticator.authenticate(token)
    error = caught.value
    assert error.http_status == 401
    assert error.headers == {"WWW-Authenticate": "Bearer"}
    assert error.message
    if token:
        assert token not in error.message
    return error


# ---------------------------------------------------------------------------------- none


async def test_mode_none_makes_everyone_the_local_admin() -> None:
    authenticator = open_authenticator(settings(auth_mode="none"), MemoryTaskStore())
    assert isinstance(authenticator, LocalAuthenticator)
    for token in (None, "", "anything", "vg_000000000000_x"):
        principal = await authenticator.authenticate(token)
        assert (principal.user_id, principal.admin) == ("local", True)


# ---------------------------------------------------------------------------------- header


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc.def", "abc.def"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
    ],
)
def test_bearer_header_scheme_in_any_case(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "vg_abc", "Token x"]
)
def test_malformed_authorization_header_is_refused(header: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        bearer_token(header)
    assert caught.value.code == "AUTH_REQUIRED"
    assert "Bearer <token>" in caught.value.message


# ---------------------------------------------------------------------------------- API keys

KEY_FORMAT = re.compile(r"^vg_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


async def test_issued_key_is_shown_once_and_stored_as_a_hash() -> None:
    store = MemoryTaskStore()
    issued = await issue_key(store, user_id="alice", label="laptop")
    assert KEY_FORMAT.match(issued.plaintext)
    _, key_id, secret = issued.plaintext.split("_", 2)
    stored = await store.get_api_key(key_id)
    assert stored == issued.key
    assert stored is not None
    assert (stored.user_id, stored.label, stored.admin, stored.revoked_at) == (
        "alice",
        "laptop",
        False,
        None,
    )
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(stored)
    again = await issue_key(store, user_id="alice")
    assert again.key.key_id != key_id and again.plaintext != issued.plaintext


async def test_api_key_authenticates_its_user() -> None:
    store = MemoryTaskStore()
    issued = await issue_key(store, user_id="alice")
    authenticator = open_authenticator(settings(auth_mode="apikey"), store)
    assert isinstance(authenticator, ApiKeyAuthenticator)
    principal = await authenticator.authenticate(issued.plaintext)
    assert (principal.user_id, principal.admin) == ("alice", False)


async def test_admin_from_the_key_or_from_admin_users() -> None:
    store = MemoryTaskStore()
    admin_key = await issue_key(store, user_id="ops", admin=True)
    listed = await issue_key(store, user_id="boss")
    plain = await issue_key(store, user_id="alice")
    authenticator = open_authenticator(
        settings(auth_mode="apikey", admin_users="boss,someone"), store
    )
    assert (await authenticator.authenticate(admin_key.plaintext)).admin is True
    assert (await authenticator.authenticate(listed.plaintext)).admin is True
    assert (await authenticator.authenticate(plain.plaintext)).admin is False


async def test_api_key_failures_have_their_codes() -> None:
    store = MemoryTaskStore()
    issued = await issue_key(store, user_id="alice")
    authenticator = ApiKeyAuthenticator(store)
    _, key_id, secret = issued.plaintext.split("_", 2)
    wrong_secret = f"vg_{key_id}_{'A' * 43}"
    unknown_id = f"vg_{'0' * 12}_{secret}"

    assert (await refused(authenticator, None)).code == "AUTH_REQUIRED"
    assert (await refused(authenticator, "")).code == "AUTH_REQUIRED"
    for malformed in ("not-a-key", f"vg_{key_id}", f"vg_{key_id}_{secret}x", "eyJ.eyJ.sig"):
        assert (await refused(authenticator, malformed)).code == "API_KEY_INVALID"
    assert (await refused(authenticator, unknown_id)).code == "API_KEY_INVALID"
    assert (await refused(authenticator, wrong_secret)).code == "API_KEY_INVALID"


async def test_revocation_applies_to_the_next_request() -> None:
    store = MemoryTaskStore()
    issued = await issue_key(store, user_id="alice")
    authenticator = ApiKeyAuthenticator(store)
    assert (await authenticator.authenticate(issued.plaintext)).user_id == "alice"
    assert await store.revoke_api_key(issued.key.key_id, at=datetime.now(UTC))
    error = await refused(authenticator, issued.plaintext)
    assert error.code == "API_KEY_REVOKED"
    # A wrong secret for a revoked key says nothing about the revocation.
    _, key_id, _ = issued.plaintext.split("_", 2)
    assert (await refused(authenticator, f"vg_{key_id}_{'B' * 43}")).code == "API_KEY_INVALID"


@pytest.mark.parametrize("user_id", ["", "a b", "x" * 129, "tab\there"])
async def test_keys_need_a_storable_user_id(user_id: str) -> None:
    with pytest.raises(ValidationFailed):
        await issue_key(MemoryTaskStore(), user_id=user_id)


# ---------------------------------------------------------------------------------- JWT HS256


async def test_hs256_token_gives_its_subject() -> None:
    authenticator = open_authenticator(jwt_settings(jwt_secret=SECRET), MemoryTaskStore())
    assert isinstance(authenticator, JwtAuthenticator)
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    principal = await authenticator.authenticate(token)
    assert (principal.user_id, principal.admin) == ("user-1", False)


async def test_hs256_secret_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    authenticator = JwtAuthenticator.from_settings(jwt_settings(jwt_secret_file=path))
    token = jwt.encode(claims(sub="from-file"), SECRET, algorithm="HS256")
    assert (await authenticator.authenticate(token)).user_id == "from-file"


@pytest.mark.parametrize(
    ("extra", "admin"),
    [
        ({"roles": ["viewer", "vidgate:admin"]}, True),
        ({"roles": ["viewer"]}, False),
        ({"roles": "vidgate:admin"}, False),  # roles must be a list
        ({"scope": "openid vidgate:admin profile"}, True),
        ({"scope": "openid vidgate:admins"}, False),
        ({"sub": "boss"}, True),  # in admin_users
    ],
)
async def test_admin_role_from_roles_scope_or_admin_users(
    extra: dict[str, Any], admin: bool
) -> None:
    authenticator = JwtAuthenticator.from_settings(
        jwt_settings(jwt_secret=SECRET, admin_users=["boss"])
    )
    token = jwt.encode(claims(**extra), SECRET, algorithm="HS256")
    assert (await authenticator.authenticate(token)).admin is admin


async def test_custom_admin_role() -> None:
    authenticator = JwtAuthenticator.from_settings(
        jwt_settings(jwt_secret=SECRET, jwt_admin_role="support")
    )
    token = jwt.encode(claims(roles=["support"]), SECRET, algorithm="HS256")
    assert (await authenticator.authenticate(token)).admin is True


def unsigned(payload: dict[str, Any]) -> str:
    """A token with ``alg: none`` and an empty signature."""
    return jwt.encode(payload, "", algorithm="none")


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: jwt.encode(claims(exp=int(time.time()) - 60), SECRET), "TOKEN_EXPIRED"),
        (lambda: jwt.encode(claims(), "another-" + "y" * 40), "TOKEN_INVALID"),
        (lambda: unsigned(claims()), "TOKEN_INVALID"),
        (lambda: jwt.encode(claims(), SECRET, algorithm="HS512"), "TOKEN_INVALID"),
        (lambda: "not.a.jwt", "TOKEN_INVALID"),
        (lambda: "garbage", "TOKEN_INVALID"),
        (lambda: jwt.encode(claims(), SECRET)[:-4] + "AAAA", "TOKEN_INVALID"),
        (lambda: jwt.encode(claims(aud="someone-else"), SECRET), "TOKEN_CLAIMS_INVALID"),
        (lambda: jwt.encode(claims(aud=None), SECRET), "TOKEN_CLAIMS_INVALID"),
        (lambda: jwt.encode(claims(iss="https://evil.example/"), SECRET), "TOKEN_CLAIMS_INVALID"),
        (lambda: jwt.encode(claims(iss=None), SECRET), "TOKEN_CLAIMS_INVALID"),
        (lambda: jwt.encode(claims(sub=None), SECRET), "TOKEN_CLAIMS_INVALID"),
        (lambda: jwt.encode(claims(sub=""), SECRET), "TOKEN_CLAIMS_INVALID"),
        (lambda: jwt.encode(claims(sub=42), SECRET), "TOKEN_CLAIMS_INVALID"),
        (lambda: jwt.encode(claims(sub="x" * 129), SECRET), "TOKEN_CLAIMS_INVALID"),
        (lambda: jwt.encode(claims(exp=None), SECRET), "TOKEN_CLAIMS_INVALID"),
        (lambda: jwt.encode(claims(nbf=int(time.time()) + 600), SECRET), "TOKEN_CLAIMS_INVALID"),
    ],
    ids=[
        "expired",
        "bad-signature",
        "alg-none",
        "wrong-alg",
        "malformed",
        "not-a-jwt",
        "tampered-signature",
        "wrong-audience",
        "no-audience",
        "wrong-issuer",
        "no-issuer",
        "missing-sub",
        "empty-sub",
        "numeric-sub",
        "long-sub",
        "missing-exp",
        "not-yet-valid",
    ],
)
async def test_hs256_failures_have_their_codes(make: Any, code: str) -> None:
    authenticator = JwtAuthenticator.from_settings(jwt_settings(jwt_secret=SECRET))
    assert (await refused(authenticator, make())).code == code


async def test_missing_token_is_auth_required() -> None:
    authenticator = JwtAuthenticator.from_settings(jwt_settings(jwt_secret=SECRET))
    assert (await refused(authenticator, None)).code == "AUTH_REQUIRED"


async def test_leeway_tolerates_a_little_clock_skew() -> None:
    authenticator = JwtAuthenticator.from_settings(
        jwt_settings(jwt_secret=SECRET, jwt_leeway_seconds=30)
    )
    token = jwt.encode(claims(exp=int(time.time()) - 5), SECRET)
    assert (await authenticator.authenticate(token)).user_id == "user-1"


# ---------------------------------------------------------------------------------- RS256, JWKS


@dataclass(frozen=True)
class RsaKey:
    private: rsa.RSAPrivateKey

    @property
    def pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self, kid: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.public))
        return {**data, "kid": kid, "use": "sig", "alg": "RS256"}

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    def sign(self, payload: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(payload, self.private, algorithm="RS256", headers=headers or None)


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[RsaKey, RsaKey]:
    def generate() -> RsaKey:
        return RsaKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    return generate(), generate()


async def test_rs256_public_key_file(tmp_path: Path, rsa_keys: tuple[RsaKey, RsaKey]) -> None:
    ours, theirs = rsa_keys
    path = tmp_path / "public.pem"
    path.write_bytes(ours.pem)
    authenticator = JwtAuthenticator.from_settings(jwt_settings(jwt_public_key_file=path))
    assert (await authenticator.authenticate(ours.sign(claims()))).user_id == "user-1"
    assert (await refused(authenticator, theirs.sign(claims()))).code == "TOKEN_INVALID"
    # HS256 "signed" with the public key as the secret: the classic algorithm confusion.
    confused = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert (await refused(authenticator, confused)).code == "TOKEN_INVALID"
    assert (await refused(authenticator, unsigned(claims()))).code == "TOKEN_INVALID"
    expired = ours.sign(claims(exp=int(time.time()) - 60))
    assert (await refused(authenticator, expired)).code == "TOKEN_EXPIRED"


def write_jwks(path: Path, *jwks: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(jwks)}))
    return path


async def test_jwks_chooses_the_key_by_kid(tmp_path: Path, rsa_keys: tuple[RsaKey, RsaKey]) -> None:
    first, second = rsa_keys
    path = write_jwks(tmp_path / "jwks.json", first.jwk("k1"), second.jwk("k2"))
    authenticator = JwtAuthenticator.from_settings(jwt_settings(jwt_jwks_file=path))
    assert (await authenticator.authenticate(first.sign(claims(sub="a"), kid="k1"))).user_id == "a"
    assert (await authenticator.authenticate(second.sign(claims(sub="b"), kid="k2"))).user_id == "b"

    unknown = first.sign(claims(), kid="k3")
    assert (await refused(authenticator, unknown)).code == "TOKEN_INVALID"
    swapped = second.sign(claims(), kid="k1")  # names k1, signed by k2's private key
    assert (await refused(authenticator, swapped)).code == "TOKEN_INVALID"
    no_kid = first.sign(claims())
    assert (await refused(authenticator, no_kid)).code == "TOKEN_INVALID"
    hs256 = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "k1"})
    assert (await refused(authenticator, hs256)).code == "TOKEN_INVALID"
    wrong_audience = first.sign(claims(aud="other"), kid="k1")
    assert (await refused(authenticator, wrong_audience)).code == "TOKEN_CLAIMS_INVALID"


async def test_jwks_with_one_key_accepts_tokens_without_kid(
    tmp_path: Path, rsa_keys: tuple[RsaKey, RsaKey]
) -> None:
    first, _ = rsa_keys
    path = write_jwks(tmp_path / "jwks.json", first.jwk("only"))
    authenticator = JwtAuthenticator.from_settings(jwt_settings(jwt_jwks_file=path))
    assert (await authenticator.authenticate(first.sign(claims()))).user_id == "user-1"


class JwksEndpoint:
    """An identity provider's JWKS endpoint on a loopback socket; the served keys can change."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.fetches += 1
                body = json.dumps({"keys": endpoint.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_endpoint() -> Iterator[JwksEndpoint]:
    endpoint = JwksEndpoint()
    yield endpoint
    endpoint.close()


async def test_jwks_url_follows_key_rotation(
    jwks_endpoint: JwksEndpoint, rsa_keys: tuple[RsaKey, RsaKey]
) -> None:
    first, second = rsa_keys
    jwks_endpoint.keys = [first.jwk("k1")]
    authenticator = JwtAuthenticator.from_settings(jwt_settings(jwt_jwks_url=jwks_endpoint.url))
    authenticator._key_set = jwks_client(jwks_endpoint.url, cooldown_seconds=0)  # no wait
    for _ in range(3):
        assert (await authenticator.authenticate(first.sign(claims(), kid="k1"))).user_id
    assert jwks_endpoint.fetches == 1  # cached
    # The identity provider rotates to k2: a token naming it makes vidgate look again.
    jwks_endpoint.keys = [first.jwk("k1"), second.jwk("k2")]
    rotated = second.sign(claims(sub="b"), kid="k2")
    assert (await authenticator.authenticate(rotated)).user_id == "b"
    assert jwks_endpoint.fetches == 2
    forged = first.sign(claims(), kid="k2")  # names k2, signed with k1's private key
    assert (await refused(authenticator, forged)).code == "TOKEN_INVALID"
    unknown = first.sign(claims(), kid="k9")
    assert (await refused(authenticator, unknown)).code == "TOKEN_INVALID"


async def test_jwks_url_unreachable_is_503_not_401(rsa_keys: tuple[RsaKey, RsaKey]) -> None:
    first, _ = rsa_keys
    url = f"http://127.0.0.1:{free_port()}/jwks.json"  # nothing listens there
    authenticator = JwtAuthenticator.from_settings(jwt_settings(jwt_jwks_url=url))
    with pytest.raises(AuthUnavailable) as caught:
        await authenticator.authenticate(first.sign(claims(), kid="k1"))
    assert (caught.value.http_status, caught.value.code) == (503, "AUTH_UNAVAILABLE")


def test_jwks_url_must_be_http() -> None:
    assert "http(s)" in config_error({"jwt_jwks_url": "file:///etc/jwks.json"})


# ---------------------------------------------------------------------------------- config


def config_error(options: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        check_config(jwt_settings(**options))
    return str(caught.value)


def test_jwt_needs_issuer_and_audience() -> None:
    assert "VIDGATE_JWT_ISSUER" in config_error({"jwt_secret": SECRET, "jwt_issuer": None})
    assert "VIDGATE_JWT_AUDIENCE" in config_error({"jwt_secret": SECRET, "jwt_audience": None})


def test_jwt_needs_exactly_one_key_source(tmp_path: Path) -> None:
    assert "exactly one key source" in config_error({})
    pem = tmp_path / "key.pem"
    pem.write_text("unused")
    message = config_error({"jwt_secret": SECRET, "jwt_public_key_file": pem})
    assert "exactly one key source" in message
    assert "VIDGATE_JWT_SECRET, VIDGATE_JWT_PUBLIC_KEY_FILE" in message


def test_unusable_key_material_is_a_config_error(tmp_path: Path) -> None:
    assert "at least 32 bytes" in config_error({"jwt_secret": "short"})
    assert "cannot read" in config_error({"jwt_public_key_file": tmp_path / "missing.pem"})
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    assert "not a PEM public key" in config_error({"jwt_public_key_file": not_pem})
    ec_pem = tmp_path / "ec.pem"
    ec_pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert "not an RSA public key" in config_error({"jwt_public_key_file": ec_pem})
    small = tmp_path / "small.pem"
    small.write_bytes(RsaKey(rsa.generate_private_key(public_exponent=65537, key_size=1024)).pem)
    assert "2048 bits" in config_error({"jwt_public_key_file": small})
    bad_jwks = tmp_path / "bad.json"
    bad_jwks.write_text("{not json")
    assert "not a usable JSON Web Key Set" in config_error({"jwt_jwks_file": bad_jwks})
    empty = write_jwks(tmp_path / "empty.json")
    assert "not a usable JSON Web Key Set" in config_error({"jwt_jwks_file": empty})


def test_jwks_keys_need_kids_when_there_are_several(
    tmp_path: Path, rsa_keys: tuple[RsaKey, RsaKey]
) -> None:
    first, second = rsa_keys
    one, two = first.jwk("a"), second.jwk("b")
    del one["kid"], two["kid"]
    path = write_jwks(tmp_path / "jwks.json", one, two)
    assert "each needs a kid" in config_error({"jwt_jwks_file": path})


def test_open_authenticator_raises_config_error_in_jwt_mode() -> None:
    with pytest.raises(ConfigError):
        open_authenticator(Settings(auth_mode="jwt"), MemoryTaskStore())


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_mode_none_binds_to_loopback(host: str) -> None:
    assert is_loopback(host)
    check_config(settings(auth_mode="none"), host=host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "example.com"])
def test_mode_none_refuses_other_addresses_unless_allowed(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_config(settings(auth_mode="none"), host=host)
    assert "VIDGATE_ALLOW_REMOTE_WITHOUT_AUTH=true" in str(caught.value)
    check_config(settings(auth_mode="none", allow_remote_without_auth=True), host=host)
    check_config(settings(auth_mode="apikey"), host=host)


# ---------------------------------------------------------------------------------- logs

KEY = "vg_0123456789ab_" + "S" * 43
TOKEN = jwt.encode(claims(), SECRET, algorithm="HS256")


def make_record(name: str, msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(
        name, logging.INFO, __file__, 1, msg, args, None, extra=extra or None
    )


def filtered(record: logging.LogRecord) -> logging.LogRecord:
    assert logs.RedactSecrets().filter(record) is True
    return record


def test_redacts_token_query_in_uvicorn_lines() -> None:
    access = filtered(
        make_record(
            "uvicorn.access",
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            f"/ws?videoId=video_1&token={TOKEN}&x=1",
            "1.1",
            101,
        )
    )
    assert access.getMessage() == (
        '127.0.0.1:5000 - "GET /ws?videoId=video_1&token=[REDACTED]&x=1 HTTP/1.1" 101'
    )
    accepted = filtered(
        make_record("uvicorn.error", '%s - "WebSocket %s" [accepted]', "c", f"/ws?token={KEY}")
    )
    assert accepted.getMessage() == 'c - "WebSocket /ws?token=[REDACTED]" [accepted]'


def test_redacts_bearer_values_keys_and_jwts_anywhere() -> None:
    record = filtered(
        make_record(
            "vidgate.test",
            "headers %s, key %s, jwt %s",
            {"authorization": f"bearer {TOKEN}"},
            KEY,
            TOKEN,
            note=f"Authorization: Bearer {KEY}",
        )
    )
    text = record.getMessage() + record.__dict__["note"]
    assert KEY not in text and TOKEN not in text
    assert "bearer [REDACTED]" in record.getMessage()
    assert record.__dict__["note"] == "Authorization: Bearer [REDACTED]"


def test_leaves_ordinary_lines_alone() -> None:
    record = filtered(make_record("vidgate.test", "task %s done in %d s", "video_1", 3))
    assert (record.msg, record.args) == ("task %s done in %d s", ("video_1", 3))


def test_redacts_tracebacks() -> None:
    try:
        raise ValueError(f"bad url http://x/ws?token={KEY}")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    filtered(record)
    for formatter in (logs.ConsoleFormatter(), logs.JsonFormatter()):
        line = formatter.format(record)
        assert KEY not in line
        assert "token=[REDACTED]" in line


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    loggers = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        for lg in [logging.getLogger(name)]
    }
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, (handlers, lg_level, propagate) in loggers.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.setLevel(lg_level)
        lg.propagate = propagate


@pytest.mark.usefixtures("restore_logging")
def test_configure_installs_the_filter_for_every_logger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure(fmt="json", level="INFO")
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "c", f"/ws?token={KEY}"
    )
    logging.getLogger("vidgate.x").warning("sent %s", f"Bearer {TOKEN}")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [entry["message"] for entry in lines] == [
        'c - "WebSocket /ws?token=[REDACTED]" [accepted]',
        "sent Bearer [REDACTED]",
    ]
