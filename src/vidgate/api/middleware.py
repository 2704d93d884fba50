"""Pure ASGI middleware that guards the edge: body size, security headers, WebSocket origin.

Pure ASGI (not ``BaseHTTPMiddleware``) so a refused request is answered before its body is
read, streamed responses stay streamed, and WebSocket handshakes can be inspected. CORS for
plain HTTP is Starlette's ``CORSMiddleware``, configured in ``vidgate.api.app``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.api.errors import envelope

logger = logging.getLogger(__name__)

# On every HTTP response, API and page alike.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}

# A Host header that can go into a CSP source expression without changing its meaning.
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once a streamed body passes the limit."""


class BodyLimit:
    """Refuse request bodies above ``max_bytes`` with ``413 PAYLOAD_TOO_LARGE``.

    A declared ``Content-Length`` over the limit is refused before any of the body is read.
    A body without one (chunked) is counted as the app reads it; once over the limit the
    app's read fails, whatever it answers is dropped, and the 413 goes out instead.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(Headers(scope=scope))
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        seen = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over:  # the app's answer to a body it could not read is replaced below
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            # The app may let the read error through, or wrap it in its own.
            if not over:
                raise
        if over and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = envelope(
            413,
            "PAYLOAD_TOO_LARGE",
            f"The request body is larger than the limit of {self.max_bytes} bytes.",
            {"limitBytes": self.max_bytes},
        )
        # The rest of the body is never read, so the connection cannot be reused.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def is_page(path: str) -> bool:
    """The test page and its assets: what the strict Content-Security-Policy covers."""
    return path == "/" or path.startswith("/static/")


def page_policy(host: str | None) -> str:
    """The test page's CSP. Scripts and styles only from vidgate's own files; the page may
    talk to vidgate (fetch, and the WebSocket on the same host) and play videos from the
    upstream's URL, which lives on another origin."""
    connect = "'self'"
    if host and _HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"connect-src {connect}",
            "media-src 'self' http: https:",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class SecurityHeaders:
    """Add ``SECURITY_HEADERS`` to every HTTP response, and the page's CSP to the page.

    ``/docs`` gets no CSP: Swagger UI loads its script and style from a CDN. Headers a
    route set itself are left alone.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = page_policy(Headers(scope=scope).get("host")) if is_page(scope["path"]) else None

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if policy is not None:
                    headers.setdefault("Content-Security-Policy", policy)
            await send(message)

        await self.app(scope, receive, with_headers)


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]``, lowercased, without the scheme's default port; None for
    anything that is not an http(s) origin (``null``, garbage)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == (443 if scheme == "https" else 80):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _same_host(origin: str, host_header: str | None) -> bool:
    """Whether the page's ``origin`` is the server the browser connected to (``Host``).
    A Host without a port means the default port of the page's own scheme."""
    if not host_header:
        return False
    page = urlsplit(origin)
    try:
        target = urlsplit(f"//{host_header.strip()}")
        page_port, target_port = page.port, target.port
    except ValueError:
        return False
    default = 443 if page.scheme == "https" else 80
    return (
        page.hostname is not None
        and page.hostname == (target.hostname or "").lower()
        and (page_port or default) == (target_port or default)
    )


class WebSocketOrigin:
    """Refuse WebSocket handshakes from pages of other origins (cross-site WebSocket
    hijacking): an ``Origin`` header must name this host, an allowed CORS origin or the
    public URL's origin. Clients that send no Origin (programs, not browsers) pass.

    A refused handshake is closed with 1008 (policy violation) before it is accepted,
    which the server answers with HTTP 403.
    """

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = {o for o in map(normalize_origin, allowed) if o is not None}

    def permits(self, origin: str, host_header: str | None) -> bool:
        normalized = normalize_origin(origin)
        if normalized is None:
            return False
        return normalized in self.allowed or _same_host(normalized, host_header)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or self.permits(origin, headers.get("host")):
            await self.app(scope, receive, send)
            return
        logger.warning("websocket refused: origin %r is not allowed", origin[:200])
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1008, "reason": "origin not allowed"})
