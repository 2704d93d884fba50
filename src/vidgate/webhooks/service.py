"""Use cases of the webhook routes: endpoints, secrets, rotation, the delivery log, replay.
Each user sees and changes only their own; another user's endpoint is answered as missing."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vidgate.domain.events import EventType
from vidgate.store import webhooks as store
from vidgate.webhooks import signing
from vidgate.webhooks.errors import (
    DeliveryNotFound,
    WebhookDisabled,
    WebhookLimitReached,
    WebhookNotFound,
)
from vidgate.webhooks.urls import check_webhook_url, refuse

logger = logging.getLogger(__name__)

EVENT_TYPES = tuple(str(t) for t in EventType)
ROTATION_OVERLAP = timedelta(hours=24)  # a rotated-out secret still signs this long
MAX_ENDPOINTS_PER_USER = 20
# The ids this service hands out; anything else is answered as missing without asking the
# database (PostgreSQL refuses a NUL in a text value: that would read as "unavailable").
_ENDPOINT_ID = re.compile(r"wh_[0-9a-f]{32}")
_DELIVERY_ID = re.compile(r"msg_[0-9a-f]{32}")


@dataclass(frozen=True, kw_only=True)
class Registered:
    endpoint: store.Endpoint
    secret: str  # shown once


class WebhookService:
    def __init__(
        self,
        webhook_store: store.WebhookStore,
        *,
        allow_private: bool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = webhook_store
        self.allow_private = allow_private
        self.clock = clock

    async def register(
        self, user_id: str, *, url: str, event_types: list[str] | None
    ) -> store.Endpoint:
        """A new endpoint; its ``secret`` is in the answer (and never shown again)."""
        types = None
        if event_types is not None:
            unknown = sorted(set(event_types) - set(EVENT_TYPES))
            if unknown or not event_types:
                problem = (
                    f"unknown event types {unknown}; known: {list(EVENT_TYPES)}"
                    if unknown
                    else "give at least one event type, or leave eventTypes out for all"
                )
                raise refuse("eventTypes", problem)
            types = tuple(t for t in EVENT_TYPES if t in event_types)
        await check_webhook_url(url, allow_private=self.allow_private)
        if len(await self.store.list_endpoints(user_id)) >= MAX_ENDPOINTS_PER_USER:
            # A limit, not a malformed request (422, as the other state refusals).
            raise WebhookLimitReached(
                f"You already have {MAX_ENDPOINTS_PER_USER} webhook endpoints, the most "
                "allowed; delete one first.",
                details={"limit": MAX_ENDPOINTS_PER_USER},
            )
        endpoint = store.Endpoint(
            id="wh_" + uuid.uuid4().hex,
            user_id=user_id,
            url=url,
            event_types=types,
            secret=signing.new_secret(),
            created_at=self.clock(),
        )
        await self.store.add_endpoint(endpoint)
        logger.info("user %s registered webhook endpoint %s", user_id, endpoint.id)
        return endpoint

    async def endpoints(self, user_id: str) -> list[store.Endpoint]:
        return await self.store.list_endpoints(user_id)

    async def get(self, user_id: str, endpoint_id: str) -> store.Endpoint:
        endpoint = None
        if _ENDPOINT_ID.fullmatch(endpoint_id):
            endpoint = await self.store.get_endpoint(endpoint_id)
        if endpoint is None or endpoint.user_id != user_id:
            raise WebhookNotFound(
                f"No webhook endpoint with id {endpoint_id!r}.", details={"id": endpoint_id}
            )
        return endpoint

    async def delete(self, user_id: str, endpoint_id: str) -> None:
        await self.get(user_id, endpoint_id)
        await self.store.delete_endpoint(endpoint_id, at=self.clock())

    async def rotate(self, user_id: str, endpoint_id: str) -> tuple[store.Endpoint, str]:
        """A new secret (returned, shown once); the old one signs too for 24 h."""
        await self.get(user_id, endpoint_id)
        secret = signing.new_secret()
        until = self.clock() + ROTATION_OVERLAP
        await self.store.rotate_endpoint(endpoint_id, secret=secret, previous_until=until)
        return await self.get(user_id, endpoint_id), secret

    async def task_secret(self, user_id: str) -> store.TaskSecret:
        """The secret that signs deliveries to the caller's tasks' ``webhookUrl``s."""
        fresh = store.TaskSecret(
            user_id=user_id, secret=signing.new_secret(), created_at=self.clock()
        )
        return await self.store.task_secret(user_id, new=fresh)

    async def rotate_task_secret(self, user_id: str) -> store.TaskSecret:
        await self.task_secret(user_id)
        fresh = store.TaskSecret(
            user_id=user_id, secret=signing.new_secret(), created_at=self.clock()
        )
        await self.store.rotate_task_secret(fresh, previous_until=self.clock() + ROTATION_OVERLAP)
        return await self.task_secret(user_id)

    async def deliveries(
        self, user_id: str, endpoint_id: str, *, limit: int
    ) -> list[store.Delivery]:
        await self.get(user_id, endpoint_id)
        return await self.store.deliveries(endpoint_id, limit=limit)

    async def replay(self, user_id: str, endpoint_id: str, delivery_id: str) -> store.Delivery:
        endpoint = await self.get(user_id, endpoint_id)
        if endpoint.disabled_at is not None:
            raise WebhookDisabled(
                f"The endpoint was disabled ({endpoint.disabled_reason}); register it again.",
                details={"id": endpoint_id},
            )
        replayed = None
        if _DELIVERY_ID.fullmatch(delivery_id):
            replayed = await self.store.replay(endpoint_id, delivery_id, at=self.clock())
        if replayed is None:
            raise DeliveryNotFound(
                f"No delivery {delivery_id!r} of this endpoint.",
                details={"id": endpoint_id, "deliveryId": delivery_id},
            )
        return replayed
