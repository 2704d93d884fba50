"""API keys (auth mode ``apikey``): ``vg_<keyId>_<secret>``, shown once, stored as a hash.

The key id is public (it names the key in ``vidgate keys list`` and ``revoke``); the
secret is 32 random bytes, so a plain SHA-256 of it is enough: there is nothing to
brute-force that a slow password hash would protect. Every request reads the key row,
so a revocation applies to the very next request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from vidgate.auth.base import Principal
from vidgate.domain.errors import Unauthenticated, ValidationFailed
from vidgate.store.base import ApiKey, KeyStore

PREFIX = "vg"
# token_urlsafe(32) gives 43 characters of [A-Za-z0-9_-]; the key id is 12 hex digits.
_KEY = re.compile(r"vg_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
MAX_USER_ID = 128  # the width of the user_id columns
MAX_LABEL = 200


@dataclass(frozen=True, kw_only=True)
class IssuedKey:
    """A new key: the stored row, and the full key, which exists only here."""

    key: ApiKey
    plaintext: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_key(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None."""
    match = _KEY.fullmatch(token)
    return (match[1], match[2]) if match else None


def check_user_id(user_id: str) -> str:
    """A user id fit for storage: 1-128 printable characters without spaces."""
    if not 0 < len(user_id) <= MAX_USER_ID or not user_id.isprintable() or " " in user_id:
        raise ValidationFailed(
            f"A user id is 1 to {MAX_USER_ID} printable characters without spaces."
        )
    return user_id


async def issue_key(
    keys: KeyStore,
    *,
    user_id: str,
    label: str = "",
    admin: bool = False,
    now: datetime | None = None,
) -> IssuedKey:
    """Create and store a key for ``user_id``; the caller shows ``plaintext`` once."""
    if len(label) > MAX_LABEL:
        raise ValidationFailed(f"A label is at most {MAX_LABEL} characters.")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        key_id=key_id,
        user_id=check_user_id(user_id),
        secret_hash=hash_secret(secret),
        label=label,
        admin=admin,
        created_at=now or datetime.now(UTC),
    )
    await keys.add_api_key(row)
    return IssuedKey(key=row, plaintext=f"{PREFIX}_{key_id}_{secret}")


class ApiKeyAuthenticator:
    """Checks ``vg_...`` keys against the store on every call (no cache, so revocation
    is immediate)."""

    def __init__(self, keys: KeyStore, *, admin_users: Iterable[str] = ()) -> None:
        self._keys = keys
        self._admins = frozenset(admin_users)

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated(
                "An API key is required: send 'Authorization: Bearer vg_...'.",
                code="AUTH_REQUIRED",
            )
        parts = parse_key(token)
        if parts is None:
            raise Unauthenticated("The API key is not a vidgate key.", code="API_KEY_INVALID")
        key_id, secret = parts
        row = await self._keys.get_api_key(key_id)
        # An unknown id and a wrong secret answer alike: the id alone proves nothing.
        if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
            raise Unauthenticated("The API key is not valid.", code="API_KEY_INVALID")
        if row.revoked_at is not None:
            raise Unauthenticated("The API key has been revoked.", code="API_KEY_REVOKED")
        return Principal(user_id=row.user_id, admin=row.admin or row.user_id in self._admins)

    async def close(self) -> None:
        """Nothing to release: the store belongs to the runtime."""
