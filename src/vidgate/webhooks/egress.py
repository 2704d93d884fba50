"""SSRF-safe posting: resolve the receiver's host once, check every address, and connect
to a checked address (the Host header and TLS name stay the URL's), so a DNS answer that
changes between the check and the connection (rebinding) cannot redirect a delivery."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from vidgate import netguard

RESOLVE_TIMEOUT_SECONDS = 5.0
MAX_RESPONSE_BYTES = 64 * 1024  # read and dropped: a receiver's answer is not kept


class Refused(Exception):
    """The receiver's address is not allowed (or cannot be resolved)."""


class Unresolved(Refused):
    """The receiver's name does not resolve now: like a receiver that is down, retried."""


@dataclass(frozen=True, kw_only=True)
class Answer:
    status_code: int | None  # None: no HTTP answer (connection failed, timed out)
    error: str | None = None


async def _addresses(host: str, port: int) -> list[netguard.IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
        )
    except (TimeoutError, OSError, UnicodeError) as exc:
        raise Unresolved(f"cannot resolve {host!r}") from exc
    found: list[netguard.IPAddress] = []
    for *_, sockaddr in infos:
        address = _literal(str(sockaddr[0]).split("%", 1)[0])
        if address is not None and address not in found:
            found.append(address)
    if not found:
        raise Unresolved(f"cannot resolve {host!r}")
    return found


def _literal(host: str) -> netguard.IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _link_local(address: netguard.IPAddress) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_link_local or (mapped is not None and mapped.is_link_local)


async def resolve(url: str, *, allow_private: bool) -> tuple[str, str, str]:
    """The URL to connect to (host replaced by a checked address), the Host header and the
    TLS server name. Every address of the host must be public unless ``allow_private``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in netguard.SCHEMES or not host or "@" in parts.netloc:
        raise Refused("not an http(s) URL with a host")
    lowered = host.lower()
    if not allow_private and (lowered == "localhost" or lowered.endswith(".localhost")):
        raise Refused("localhost is not allowed")
    try:
        port = parts.port or netguard.DEFAULT_PORTS[scheme]
        # An internationalised name goes on the wire (Host, TLS name) in its ASCII form,
        # the one the resolver looked up.
        server_name = host if host.isascii() else lowered.encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise Refused(f"not a valid URL ({exc})") from exc
    addresses = await _addresses(lowered, port)
    for address in addresses:
        if not allow_private and not netguard.is_public(address):
            raise Refused(f"{host!r} resolves to {address}, which is not public")
        if _link_local(address):
            # Even for self-hosted receivers: 169.254.169.254 and its kind are the cloud
            # metadata services, which hand out the machine's credentials.
            raise Refused(f"{host!r} resolves to {address}, a link-local address")
    chosen = addresses[0]
    shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    host_header = parts.netloc
    if not host_header.isascii():
        host_header = f"{server_name}:{parts.port}" if parts.port else server_name
    target = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return target, host_header, server_name


class Poster:
    """Posts deliveries with an HTTP client of its own (never the providers')."""

    def __init__(self, *, timeout_seconds: float, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,  # a redirect is a failed delivery
            trust_env=False,  # no proxy from the environment: we connect where we checked
            # No connection is kept for the next delivery: the pool knows a connection by
            # the address it connected to, so a TLS connection checked for one receiver's
            # name would carry the next delivery to another name on the same address.
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
        )
        self._timeout = timeout_seconds

    async def post(self, url: str, *, body: str, headers: dict[str, str]) -> Answer:
        """Raises ``Refused`` for an address that is not allowed; a name that does not
        resolve now is answered as a failed attempt (retried), as a receiver that is down."""
        try:
            target, host_header, server_name = await resolve(url, allow_private=self.allow_private)
        except Unresolved as exc:
            return Answer(status_code=None, error=str(exc))
        sent = {
            **headers,
            "content-type": "application/json",
            "user-agent": "vidgate-webhooks/1",
            "host": host_header,
        }
        extensions = {"sni_hostname": server_name} if target.startswith("https") else {}
        try:
            async with asyncio.timeout(self._timeout):
                request = self._client.build_request(
                    "POST", target, content=body.encode(), headers=sent, extensions=extensions
                )
                response = await self._client.send(request, stream=True)
                try:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read > MAX_RESPONSE_BYTES:
                            break
                finally:
                    await response.aclose()
        except TimeoutError:
            return Answer(status_code=None, error=f"no answer within {self._timeout:g} s")
        except httpx.HTTPError as exc:
            return Answer(status_code=None, error=f"{type(exc).__name__}: {exc}"[:300])
        return Answer(status_code=response.status_code)

    async def aclose(self) -> None:
        await self._client.aclose()
