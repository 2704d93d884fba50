"""A Vertex bearer token from a service-account file, through ``google-auth``.

``google-auth`` is imported on first use, so only a Vertex provider needs it installed.
It is synchronous: loading the file and refreshing the token run in a worker thread,
one refresh at a time. Its failures become the ``UpstreamError`` tree: a refused
account is this provider's problem (``provider_unavailable``), not the request's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from vidgate.providers.base import ErrorCategory, UpstreamRejected, UpstreamUnavailable

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _refused(message: str) -> UpstreamRejected:
    return UpstreamRejected(
        message, status=401, code="UNAUTHENTICATED", category=ErrorCategory.PROVIDER_UNAVAILABLE
    )


class ServiceAccountToken:
    def __init__(self, name: str, path: Path | None, *, timeout: float) -> None:
        self.name = name
        self.path = path
        self.timeout = timeout
        self._credentials: Any = None  # google.oauth2.service_account.Credentials
        self._request: Any = None
        self._lock = asyncio.Lock()

    async def header(self) -> str:
        """``Bearer <token>``, refreshed when google-auth says it is (nearly) expired."""
        credentials = self._credentials
        if credentials is None or not credentials.valid:
            async with self._lock:
                credentials = self._credentials or await self._load()
                if not credentials.valid:
                    await self._refresh(credentials)
        return f"Bearer {credentials.token}"

    async def _load(self) -> Any:
        if self.path is None:
            raise _refused(f"{self.name}: the vertex surface needs service_account_file")
        try:
            from google.auth.transport.requests import Request
            from google.oauth2 import service_account
        except ImportError as exc:
            raise _refused(
                f"{self.name}: the vertex surface needs google-auth (pip install google-auth)"
            ) from exc
        try:
            credentials = await asyncio.to_thread(
                service_account.Credentials.from_service_account_file,
                str(self.path),
                scopes=[CLOUD_PLATFORM_SCOPE],
            )
        except (OSError, ValueError, KeyError) as exc:
            raise _refused(
                f"{self.name}: cannot read the service account file {self.path} "
                f"({type(exc).__name__})"
            ) from exc
        self._request = _TimedRequest(Request(), self.timeout)
        self._credentials = credentials
        return credentials

    async def _refresh(self, credentials: Any) -> None:
        from google.auth import exceptions

        try:
            await asyncio.to_thread(credentials.refresh, self._request)
        except exceptions.RefreshError as exc:
            # The token endpoint said no (a revoked key, a wrong clock), or failed for now.
            if getattr(exc, "retryable", False):
                raise UpstreamUnavailable(
                    f"{self.name}: the token exchange failed for now", maybe_received=False
                ) from exc
            raise _refused(f"{self.name}: the service account was refused a token") from exc
        except exceptions.TransportError as exc:
            raise UpstreamUnavailable(
                f"{self.name}: cannot reach the token endpoint", maybe_received=False
            ) from exc


class _TimedRequest:
    """google-auth's requests transport with our timeout (its own default is 120 s)."""

    def __init__(self, inner: Any, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        kwargs["timeout"] = self._timeout
        return self._inner(url, method=method, **kwargs)
