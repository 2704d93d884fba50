"""Secrets and signatures: ``whsec_`` keys, and the ``webhook-*`` headers of a message."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def headers(*, msg_id: str, at: datetime, body: str, keys: tuple[str, ...]) -> dict[str, str]:
    """The Standard Webhooks headers: one ``v1,`` signature per key, space-separated (two
    while a rotated-out secret still signs)."""
    at = at.astimezone(UTC)
    signatures = " ".join(Webhook(key).sign(msg_id, at, body) for key in keys)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
