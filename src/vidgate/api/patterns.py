"""Regular expressions the OpenAPI document states for checks the code makes by hand.

Some inputs are checked in code rather than by a pydantic constraint, to answer with a
specific error (``INVALID_IDEMPOTENCY_KEY``) or because the rule is not a regular one (a
URL's port range). The document states each of them as a JSON Schema ``pattern`` (through
``json_schema_extra``, so that pydantic does not enforce it a second time) that accepts
exactly what the code accepts; ``tests/unit/test_patterns.py`` holds them to that.
"""

from __future__ import annotations

# ``Idempotency-Key`` as vidgate reads it (``routes._idempotency_key``): 1 to 255
# printable ASCII characters, or the IETF draft's quoted string of such, so a value that
# starts and ends with a double quote is a quoted one and "" is empty. The HTTP stack
# strips spaces around a header value before vidgate reads it, so none starts or ends one.
IDEMPOTENCY_KEY = (
    "^(?:"
    '"[ -~]{1,255}"'  # quoted: its inside is the key
    '|"'  # a lone quote is a one-character key
    "|[!#-~](?:[ -~]{0,253}[!-~])?"  # does not start with a quote
    '|"[ -~]{0,253}[!#-~]'  # starts with a quote, does not end with one
    ")$"
)

# What ``str.isspace`` calls a space, and the other characters ``netguard`` refuses
# anywhere in a URL (controls, DEL, backslash).
_REFUSED = "\\x00-\\x20\\x7f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\\\"
# Characters whose NFKC form holds one of "/?#@:", which ``urllib.parse`` refuses in a
# host (a host is looked up by its NFKC, IDNA form).
_NFKC_DELIMITERS = (
    "\\u2047-\\u2049\\u2100\\u2101\\u2105\\u2106\\u2a74\\ufe13\\ufe16\\ufe55\\ufe56"
    "\\ufe5f\\ufe6b\\uff03\\uff0f\\uff1a\\uff1f\\uff20"
)
# A character of the host: no delimiter, no credentials ("@"), no bracketed IPv6
# literal (refused unless private addresses are allowed, and then not worth a pattern).
_HOST = f"[^{_REFUSED}/?#@\\[\\]:{_NFKC_DELIMITERS}]"
# 1 to 65535; leading zeros are read as a number too.
_PORT = "0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"


def _url(scheme: str) -> str:
    """A URL of ``scheme`` with a host, no credentials, a port (if any) in 1..65535, no
    whitespace, control character or backslash anywhere (``netguard._parse``)."""
    return (
        f"^{scheme}://{_HOST}*[^.{_REFUSED}/?#@\\[\\]:{_NFKC_DELIMITERS}]{_HOST}*"
        f"(?::(?:{_PORT})?)?(?:[/?#][^{_REFUSED}]*)?$"
    )


# ``inputReference`` and ``images[].url`` (the body's validators want the scheme in lower
# case). Whether the host is a public address is decided when the request is made (DNS),
# and answered 422 VALIDATION_ERROR: no pattern can state it.
HTTP_URL = _url("https?")
# A webhook URL (``webhooks.urls``): the same, but urllib alone reads it, and it takes
# the scheme in any case.
WEBHOOK_URL = _url("[hH][tT][tT][pP][sS]?")

# The listing's ``cursor``: opaque, the ``nextCursor`` of an earlier page, or empty for
# the first page. No pattern can tell one this server issued from another string, so the
# document names a format for it; a client passes ``nextCursor`` back unchanged.
CURSOR_FORMAT = "vidgate-cursor"

# What ``str.strip`` removes: ``str.isspace`` characters.
_SPACES = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
_SPACE = f"[{_SPACES}]"


def _not_above(bound: str) -> str:
    """Strings of ``len(bound)`` digits that are not above ``bound`` (of one length,
    text order is number order)."""
    branches = [bound]
    for i, digit in enumerate(bound):
        if digit != "0":
            branches.append(f"{bound[:i]}[0-{int(digit) - 1}][0-9]{{{len(bound) - i - 1}}}")
    return "|".join(branches)


# ``Last-Event-ID`` and ``lastEventId`` of the SSE streams (``sse._after``): an event id,
# 0 to 2**63 - 1 in at most 19 ASCII digits, spaces around it ignored.
EVENT_ID = f"^{_SPACE}*(?:[0-9]{{1,18}}|{_not_above(str(2**63 - 1))}){_SPACE}*$"

# Text that no database column (nor any upstream) takes: a NUL character anywhere.
NO_NUL = "^[^\\x00]*$"
# A prompt: no NUL, and not blank (``str.strip`` would leave something).
PROMPT = f"^[^\\x00]*[^\\x00{_SPACES}][^\\x00]*$"
