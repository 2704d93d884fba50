"""The OpenAPI document's patterns accept exactly what the code accepts.

Each pattern of ``vidgate.api.patterns`` is compared with the code it describes on
generated strings: strings the pattern matches, near misses built from valid values, and
arbitrary text. A disagreement either way is a schema that lies to clients (a value the
document allows is refused, or one it forbids goes through).
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from vidgate.api import patterns
from vidgate.api.routes import _idempotency_key
from vidgate.api.schemas import CreateTask, ImageBody
from vidgate.api.sse import _after
from vidgate.domain.errors import InvalidHeader, InvalidIdempotencyKey, ValidationFailed
from vidgate.netguard import check_reference_url
from vidgate.webhooks.urls import check_webhook_url

KEY = re.compile(patterns.IDEMPOTENCY_KEY)
URL = re.compile(patterns.HTTP_URL)
WEBHOOK_URL = re.compile(patterns.WEBHOOK_URL)
EVENT_ID = re.compile(patterns.EVENT_ID)


def key_accepted(value: str) -> bool:
    try:
        _idempotency_key(value)
    except InvalidIdempotencyKey:
        return False
    return True


def as_read(value: str) -> str:
    """A header value as vidgate reads it: the HTTP stack strips the spaces around it."""
    return value.strip(" \t")


def url_accepted(value: str) -> bool:
    """Whether both the body models and the URL check take ``value``: by the rules of
    the default settings, but without the DNS lookup (whether a host is public is not a
    question of the URL's form, and the pattern does not speak of it)."""
    if len(value) > 2048:
        return False
    try:
        CreateTask(prompt="p", input_reference=value)
        ImageBody(url=value)
        asyncio.run(check_reference_url(value, allow_private=True))
    except (ValidationError, ValidationFailed):
        return False
    # The default settings refuse a bracketed IPv6 literal before any lookup.
    return "[" not in urlsplit(value).netloc


def webhook_url_accepted(value: str) -> bool:
    """As ``url_accepted``, for a webhook URL (checked by ``webhooks.urls`` alone)."""
    try:
        asyncio.run(check_webhook_url(value, allow_private=True))
    except ValidationFailed:
        return False
    return bool(value) and "[" not in urlsplit(value).netloc


def event_id_accepted(value: str) -> bool:
    try:
        _after(None, value)
    except InvalidHeader:
        return False
    return True


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=260)
url_text = st.one_of(
    st.from_regex(URL, fullmatch=True),
    st.builds(
        "".join,
        st.lists(
            st.sampled_from(
                [
                    "http://",
                    "https://",
                    "HTTP://",
                    "h",
                    ".",
                    ":",
                    "0",
                    "65536",
                    "8080",
                    "@",
                    "[",
                    "]",
                    "/",
                    "?",
                    "#",
                    "%",
                    "\\",
                    " ",
                    "\t",
                    "\x00",
                    "\uff1a",
                    "\u2100",
                    "\x85",
                    "\xa0",
                    "é",
                    "a.b",
                    ":0",
                    ":00080",
                    "x",
                ]
            ),
            max_size=12,
        ),
    ),
    st.text(max_size=40).map(lambda s: "http://" + s),
    st.text(max_size=40),
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.from_regex(KEY, fullmatch=True), header_text))
@example('""')
@example('"')
@example('"a"')
@example("a" * 255)
@example("a" * 256)
@example('"' + "a" * 255 + '"')
@example('"' + "a" * 254)
def test_the_idempotency_key_pattern_is_the_check(value: str) -> None:
    read = as_read(value)
    if not read:
        return  # an empty header value: not one the pattern speaks of (no header sent)
    assert bool(KEY.fullmatch(read)) == key_accepted(read), repr(read)


@settings(max_examples=600, deadline=None)
@given(url_text)
@example("http://a")
@example("http://.")
@example("http://a.:0")
@example("http://a:65535/x")
@example("http://a:65536")
@example("http://a:")
@example("http://a:b")
@example("http://[::1]:80/")
@example("http://[::1/")
@example("http://a\uff1ab/")
@example("http://u@a/")
@example("http:///x")
@example("https://a/\\")
def test_the_url_pattern_is_the_check(value: str) -> None:
    assert bool(URL.fullmatch(value)) == url_accepted(value), repr(value)


@pytest.mark.parametrize(
    "value", ["https://cdn.example.com/a.png", "http://203.0.113.9:8080/x?y=1#z"]
)
def test_ordinary_urls_match(value: str) -> None:
    assert URL.fullmatch(value)


@settings(max_examples=600, deadline=None)
@given(url_text)
@example("HTTP://a")
@example("hTTpS://a:1/")
@example("ftp://a")
@example("")
def test_the_webhook_url_pattern_is_the_check(value: str) -> None:
    assert bool(WEBHOOK_URL.fullmatch(value)) == webhook_url_accepted(value), repr(value)


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(
        st.from_regex(EVENT_ID, fullmatch=True),
        st.integers(min_value=-10, max_value=2**64).map(str),
        st.text(max_size=25),
    )
)
@example(str(2**63 - 1))
@example(str(2**63))
@example("0" * 19)
@example("0" * 20)
@example(" 7\n")
@example("\u0667")
def test_the_event_id_pattern_is_the_check(value: str) -> None:
    assert bool(EVENT_ID.fullmatch(value)) == event_id_accepted(value), repr(value)


def created(**fields: object) -> bool:
    try:
        CreateTask.model_validate(fields)
    except ValidationError:
        return False
    return True


tricky_text = st.text(
    st.sampled_from(["a", " ", "\t", "\x00", "\x1c", "\x85", "\xa0", "\u3000", "\ufeff", "é"]),
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(tricky_text, st.text(max_size=20)))
def test_the_text_patterns_are_the_checks(value: str) -> None:
    prompt = re.compile(patterns.PROMPT)
    no_nul = re.compile(patterns.NO_NUL)
    assert bool(prompt.fullmatch(value)) == created(prompt=value), repr(value)
    model_ok = bool(no_nul.fullmatch(value)) and 1 <= len(value) <= 128
    assert model_ok == created(prompt="p", model=value), repr(value)
    assert bool(no_nul.fullmatch(value)) == created(prompt="p", negativePrompt=value)
    assert bool(no_nul.fullmatch(value)) == created(prompt="p", extra={value: [{"k": value}]})
