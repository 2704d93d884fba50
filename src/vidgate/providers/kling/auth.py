"""Kling's bearer token: a short-lived JWT, HS256 over the access key, signed with the
secret key."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import jwt

# The vendor's recipe: exp = now + 30 min, nbf = now - 5 s (clock skew).
TOKEN_LIFETIME = 1800
TOKEN_NOT_BEFORE = 5
# A token is replaced this long before it expires, so none expires in flight.
TOKEN_RENEW_BEFORE = 300


class Token:
    """The bearer JWT, renewed ``TOKEN_RENEW_BEFORE`` seconds before it expires."""

    def __init__(self, access_key: str, secret_key: str, clock: Callable[[], float]) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._value: str | None = None
        self._expires = 0.0

    def current(self) -> str:
        now = self._clock()
        if self._value is None or now >= self._expires - TOKEN_RENEW_BEFORE:
            issued = int(now)
            claims = {
                "iss": self._access_key,
                "exp": issued + TOKEN_LIFETIME,
                "nbf": issued - TOKEN_NOT_BEFORE,
            }
            with warnings.catch_warnings():
                # Kling issues the secret key; its length is not ours to choose.
                warnings.filterwarnings("ignore", message="The HMAC key is", category=UserWarning)
                self._value = jwt.encode(claims, self._secret_key, algorithm="HS256")
            self._expires = float(issued + TOKEN_LIFETIME)
        return self._value
