"""Kling's credential check: ``Authorization: Bearer <JWT>``, HS256 over the access key.

``--api-key`` holds ``ACCESS_KEY:SECRET_KEY``. A token passes when its signature verifies
with the secret key, ``iss`` is the access key, ``nbf`` (if present) has passed and ``exp``
has not. Refusals are HTTP 401 with the vendor's codes: 1001 no Authorization, 1002 not a
bearer JWT, 1000 wrong signature or issuer, 1003 not yet valid, 1004 expired. Without
``--api-key`` any request passes, as the OpenAI simulator does without one.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass

import jwt
from fastapi import Request

from vidgate.simulator.deps import StateDep
from vidgate.simulator.protocols.kling.envelope import KlingError


@dataclass(frozen=True, slots=True)
class KeyPair:
    access_key: str
    secret_key: str

    @classmethod
    def parse(cls, api_key: str) -> KeyPair:
        access, sep, secret = api_key.partition(":")
        if not sep or not access or not secret:
            raise ValueError("the kling simulator's --api-key must be ACCESS_KEY:SECRET_KEY")
        return cls(access_key=access, secret_key=secret)


def check_token(header: str | None, keys: KeyPair) -> None:
    """Raise Kling's 401 for anything but a valid token signed with ``keys``."""
    if not header or not header.strip():
        raise KlingError(401, 1001)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise KlingError(401, 1002)
    try:
        # PyJWT checks the signature before the time claims, as a verifier must: a
        # forged expired token is a forgery (1000), not an expiry (1004).
        with warnings.catch_warnings():
            # Kling issues the keys; a short one is the vendor's choice, not an error here.
            warnings.filterwarnings("ignore", message="The HMAC key is", category=UserWarning)
            claims = jwt.decode(
                token,
                keys.secret_key,
                algorithms=["HS256"],
                options={"require": ["iss", "exp"]},
            )
    except jwt.ExpiredSignatureError:
        raise KlingError(401, 1004) from None
    except jwt.ImmatureSignatureError:
        raise KlingError(401, 1003) from None
    except jwt.InvalidSignatureError:
        raise KlingError(401, 1000) from None
    except jwt.InvalidTokenError:
        raise KlingError(401, 1002) from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not secrets.compare_digest(
        issuer.encode(), keys.access_key.encode()
    ):
        raise KlingError(401, 1000)


def require_token(request: Request, state: StateDep) -> None:
    """Router dependency: runs after ``api_guard`` (faults come before the key check)."""
    api_key = state.config.api_key
    if api_key is None:
        return
    check_token(request.headers.get("authorization"), KeyPair.parse(api_key))
