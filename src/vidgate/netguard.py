"""Refuse input-reference URLs that would make vidgate (or its upstream) fetch from inside.

An ``inputReference`` is a URL the upstream, and perhaps vidgate itself, downloads. Left
unchecked it is a server-side request forgery: ``http://169.254.169.254/`` reads cloud
credentials, ``http://127.0.0.1:6379/`` talks to Redis. So, unless the operator allows
private addresses (``VIDGATE_INPUT_REFERENCE_ALLOW_PRIVATE``), a reference must be an
http(s) URL without credentials whose host is, and resolves only to, global addresses.

The check resolves the name once, at create time. A name that later resolves elsewhere
(DNS rebinding) is not caught here; whatever fetches the URL must connect to a checked
address or repeat the check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from vidgate.domain.errors import ValidationFailed

FIELD = "inputReference"
RESOLVE_TIMEOUT_SECONDS = 2.0
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not covered by ``is_private`` in every Python release, so named explicitly.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _refuse(problem: str) -> ValidationFailed:
    return ValidationFailed(
        f"Invalid {FIELD}: {problem}",
        details={"fields": [{"field": FIELD, "problem": problem}]},
    )


def _translated_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv4-mapped (``::ffff:a.b.c.d``) or NAT64 (``64:ff9b::a.b.c.d``,
    what DNS64 answers on IPv6-only networks) address reaches."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _tunnelled_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 endpoint a 6to4 or Teredo address carries."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a global unicast address. IPv6 forms that reach an IPv4 host
    are judged by that host; the deprecated IPv4-compatible ``::a.b.c.d`` is reserved."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        translated = _translated_ipv4(address)
        if translated is not None:
            return is_public(translated)
        tunnelled = _tunnelled_ipv4(address)
        if tunnelled is not None and not is_public(tunnelled):
            return False
    elif address in _CGNAT:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _parse(url: str) -> tuple[SplitResult, str]:
    """The split URL and its host; raises ``ValidationFailed`` for what is never allowed."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in url):
        # Parsers disagree on these (urlsplit drops tabs, browsers read "\\" as "/"); a
        # URL that could mean two things is refused rather than guessed at.
        raise _refuse("the URL must not contain whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise _refuse(f"not a valid URL ({exc})") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise _refuse("only http and https URLs are accepted")
    if "@" in parts.netloc:
        raise _refuse("credentials (user:password@) are not allowed in the URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _refuse("the URL has no host")
    if port == 0:
        raise _refuse("port 0 is not a valid destination")
    return parts, host


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str, port: int) -> set[IPAddress]:
    """Every address ``host`` resolves to; raises ``ValidationFailed`` if it does not."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
            timeout=RESOLVE_TIMEOUT_SECONDS,
        )
    except TimeoutError as exc:
        raise _refuse(f"the host {host!r} could not be resolved in time") from exc
    except (OSError, UnicodeError) as exc:
        raise _refuse(f"the host {host!r} cannot be resolved") from exc
    addresses: set[IPAddress] = set()
    for _family, _type, _proto, _name, sockaddr in infos:
        address = _literal(str(sockaddr[0]).split("%", 1)[0])
        if address is not None:
            addresses.add(address)
    if not addresses:
        raise _refuse(f"the host {host!r} cannot be resolved")
    return addresses


async def check_reference_url(url: str, *, allow_private: bool) -> None:
    """Raise ``ValidationFailed`` unless ``url`` is an acceptable input reference.

    Always refused: a scheme other than http/https, a missing host, credentials in the
    URL. Unless ``allow_private``: ``localhost`` names, and hosts that are, or resolve to,
    any address that is not global (loopback, private, link-local including the cloud
    metadata address, multicast, reserved, unspecified, CGNAT, and the IPv6 forms that
    embed those). A name that cannot be resolved within two seconds is refused too.
    """
    parts, host = _parse(url)
    if allow_private:
        return
    lowered = host.lower()
    if lowered == "localhost" or lowered.endswith(".localhost"):
        raise _refuse("localhost is not allowed")
    literal = _literal(lowered)
    if literal is not None:
        if not is_public(literal):
            raise _refuse(f"the address {literal} is not a public address")
        return
    if "%" in lowered or "[" in parts.netloc:
        raise _refuse("the host is not a valid address")
    port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
    for address in sorted(await _resolve(lowered, port), key=str):
        if not is_public(address):
            raise _refuse(f"the host {host!r} resolves to {address}, which is not public")
