"""The REST half of the client: the ``/api/video`` wrapper that unwraps the envelope."""

from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from vidgate.client.errors import ClientError, _error_text

# ---------------------------------------------------------------------------------- REST


def _base_url(server: str) -> str:
    parts = urlsplit(server.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"error: --server must be an http(s) URL, got {server!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class _Api:
    """The REST half of the contract: unwraps ``{"success": ..., "data"/"error": ...}``."""

    def __init__(self, server: str, token: str | None = None) -> None:
        self.base = _base_url(server)
        self.auth_headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.base + "/",
            timeout=httpx.Timeout(30.0, connect=5.0),
            headers={
                "Accept": "application/json",
                "User-Agent": "vidgate-cli",
                **self.auth_headers,
            },
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        try:
            response = self._client.request(method, path, params=params, json=body)
        except httpx.TimeoutException as exc:
            raise ClientError(f"error: vidgate at {self.base} did not answer in time") from exc
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ClientError(f"error: cannot reach vidgate at {self.base} ({reason})") from exc
        return self._unwrap(response)

    def _unwrap(self, response: httpx.Response) -> Any:
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if isinstance(envelope, dict):
            if envelope.get("success") is True:
                return envelope.get("data")
            error = envelope.get("error")
            if envelope.get("success") is False and isinstance(error, dict):
                raise ClientError(f"error {_error_text(error)}")
        raise ClientError(
            f"error HTTP_{response.status_code}: unexpected answer from {response.request.url}"
            " (is --server a vidgate server?)"
        )

    def task(self, video_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.call("GET", f"api/video/tasks/{quote(video_id, safe='')}")
        return data
