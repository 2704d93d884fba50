"""Input-reference URLs: only public http(s) destinations, unless private ones are allowed.

Literal addresses and ``localhost`` only: this machine has no outside DNS, so any real
name is unresolvable here, and is refused as such.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from vidgate import netguard
from vidgate.domain.errors import ValidationFailed
from vidgate.netguard import check_reference_url


async def refused(url: str, *, allow_private: bool = False) -> str:
    """The problem ``check_reference_url`` reports for ``url``."""
    with pytest.raises(ValidationFailed) as caught:
        await check_reference_url(url, allow_private=allow_private)
    error = caught.value
    assert error.code == "VALIDATION_ERROR"
    assert error.http_status == 422
    [field] = error.details["fields"]
    assert field["field"] == "inputReference"
    assert error.message == f"Invalid inputReference: {field['problem']}"
    problem: str = field["problem"]
    return problem


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8/ref.png",
        "https://1.1.1.1:8443/path?q=1#frag",
        "HTTPS://8.8.4.4/",
        "http://[2001:4860:4860::8888]/ref.jpg",
        "http://[::ffff:8.8.8.8]/",  # IPv4-mapped form of a public address
        "http://[64:ff9b::808:808]/",  # NAT64 (DNS64 answers on IPv6-only networks)
        "http://192.88.99.1/",
    ],
)
async def test_public_addresses_pass(url: str) -> None:
    await check_reference_url(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://8.8.8.8/file", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("gopher://8.8.8.8:70/_", "only http and https"),
        ("//8.8.8.8/no-scheme", "only http and https"),
        ("8.8.8.8/no-scheme", "only http and https"),
        ("http:///no-host", "no host"),
        ("http://", "no host"),
        ("http://user:secret@8.8.8.8/", "credentials"),
        ("http://token@8.8.8.8/", "credentials"),
        ("http://@8.8.8.8/", "credentials"),
        ("http://8.8.8.8:99999/", "not a valid URL"),
        ("http://8.8.8.8:port/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
        ("http://8.8.8.8:0/", "port 0"),
        ("http://8.8.8.8/a b", "whitespace"),
        ("http://8.8.8.8/\tx", "whitespace"),
        (" http://8.8.8.8/", "whitespace"),
        ("http://8.8.8.8\\@127.0.0.1/", "backslashes"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_always_refused(url: str, problem: str, allow_private: bool) -> None:
    """Scheme, host, credentials and parse problems are refused even when private
    addresses are allowed."""
    assert problem in await refused(url, allow_private=allow_private)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "169.254.0.1",
        "100.64.0.1",  # carrier-grade NAT
        "100.127.255.254",
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "192.0.2.10",  # documentation
        "198.18.0.1",  # benchmarking
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fe80::1%25eth0]",
        "[fc00::1]",
        "[fd12:3456::1]",
        "[ff02::1]",
        "[2001:db8::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:169.254.169.254]",
        "[::ffff:10.0.0.1]",
        "[::127.0.0.1]",  # IPv4-compatible (deprecated)
        "[::10.0.0.1]",
        "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[2002:a9fe:a9fe::]",  # 6to4 of 169.254.169.254
    ],
)
async def test_non_global_addresses_are_refused(host: str) -> None:
    problem = await refused(f"http://{host}:8080/ref.png")
    assert "not a public address" in problem
    await check_reference_url(f"http://{host}:8080/ref.png", allow_private=True)


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0x7f.1", "127.1", "017700000001", "0177.0.0.1"]
)
async def test_other_spellings_of_loopback_are_resolved_and_refused(host: str) -> None:
    """``inet_aton`` forms that HTTP clients accept: judged by what they resolve to."""
    problem = await refused(f"http://{host}/")
    assert "resolves to 127.0.0.1" in problem


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://LOCALHOST:8000/x",
        "http://localhost./",
        "https://app.localhost/",
        "http://deep.sub.localhost:9/",
    ],
)
async def test_localhost_names_are_refused(url: str) -> None:
    assert "localhost" in await refused(url)
    await check_reference_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.invalid/ref.png",
        "https://no-such-host.invalid:8443/",
        "http://bücher.invalid/",
    ],
)
async def test_unresolvable_names_are_refused(url: str) -> None:
    assert "cannot be resolved" in await refused(url)


async def test_allow_private_skips_resolution() -> None:
    """With private addresses allowed there is nothing to resolve for: an internal name
    that only the upstream can resolve is accepted."""
    await check_reference_url("http://media.internal.invalid/ref.png", allow_private=True)


async def test_resolution_has_a_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hanging_resolver(*_args: object, **_kwargs: object) -> list[object]:
        await asyncio.sleep(10)
        return []

    monkeypatch.setattr(netguard, "RESOLVE_TIMEOUT_SECONDS", 0.05)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", hanging_resolver)
    started = time.monotonic()
    assert "could not be resolved in time" in await refused("http://slow.example/")
    assert time.monotonic() - started < 1.0


def test_is_public_judges_translated_ipv4_by_its_host() -> None:
    mapped = ipaddress.IPv6Address("::ffff:8.8.8.8")
    assert netguard.is_public(mapped)
    assert not netguard.is_public(ipaddress.IPv6Address("::ffff:192.168.0.1"))
    assert not netguard.is_public(ipaddress.IPv4Address("100.100.100.100"))
    assert netguard.is_public(ipaddress.IPv4Address("100.128.0.1"))  # just past CGNAT
