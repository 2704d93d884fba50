"""Which webhook URLs are accepted: the same public-address rule as ``inputReference``
(vidgate.netguard), checked when a URL is registered and again, after resolving, at each
send (vidgate.webhooks.egress)."""

from __future__ import annotations

from vidgate import netguard
from vidgate.domain.errors import ValidationFailed

MAX_URL_LENGTH = 2048


def refuse(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(
        f"Invalid {field}: {problem}", details={"fields": [{"field": field, "problem": problem}]}
    )


async def check_webhook_url(url: str, *, allow_private: bool, field: str = "url") -> None:
    """Raise ``ValidationFailed`` (422) unless ``url`` may receive webhooks: http(s), no
    credentials, at most 2048 characters, and (unless ``allow_private``) a host that is and
    resolves only to public addresses."""
    if len(url) > MAX_URL_LENGTH:
        raise refuse(field, f"the URL must be at most {MAX_URL_LENGTH} characters")
    try:
        await netguard.check_reference_url(url, allow_private=allow_private)
    except ValidationFailed as exc:
        problems = exc.details.get("fields") or [{"problem": exc.message}]
        raise refuse(field, str(problems[0].get("problem"))) from None
