"""The authenticator for the configured mode, and the checks ``serve`` runs before binding."""

from __future__ import annotations

import ipaddress

from vidgate.auth.base import Authenticator, Principal
from vidgate.auth.keys import ApiKeyAuthenticator
from vidgate.auth.tokens import JwtAuthenticator
from vidgate.config import ConfigError, Settings
from vidgate.domain.errors import Unauthenticated
from vidgate.store.base import KeyStore

LOCAL_USER = "local"


class LocalAuthenticator:
    """Auth mode ``none`` (development): every caller is the one local user, an admin."""

    async def authenticate(self, token: str | None) -> Principal:
        return Principal(user_id=LOCAL_USER, admin=True)

    async def close(self) -> None:
        """Nothing to release."""


def open_authenticator(settings: Settings, keys: KeyStore) -> Authenticator:
    """The authenticator for ``settings.auth_mode``; ``ConfigError`` if it cannot work."""
    if settings.auth_mode == "apikey":
        return ApiKeyAuthenticator(keys, admin_users=settings.admin_users)
    if settings.auth_mode == "jwt":
        return JwtAuthenticator.from_settings(settings)
    return LocalAuthenticator()


def check_config(settings: Settings, *, host: str | None = None) -> None:
    """Refuse, with a ``ConfigError`` naming the fix, what ``serve`` must not start with:
    unusable JWT settings, or mode ``none`` on an address other machines can reach."""
    if settings.auth_mode == "jwt":
        JwtAuthenticator.from_settings(settings)
    if (
        settings.auth_mode == "none"
        and host is not None
        and not is_loopback(host)
        and not settings.allow_remote_without_auth
    ):
        raise ConfigError(
            f"auth mode none lets anyone in, so vidgate only listens on loopback; refusing "
            f"{host!r}. Set VIDGATE_AUTH_MODE=apikey or jwt, or (at your own risk) "
            "VIDGATE_ALLOW_REMOTE_WITHOUT_AUTH=true"
        )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case);
    None without a header. Another scheme or an empty token is refused."""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(
            "The Authorization header must be 'Bearer <token>'.", code="AUTH_REQUIRED"
        )
    return token
