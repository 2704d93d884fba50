"""Webhook routes (docs/API.md "Webhooks"): parse, authorise, delegate to WebhookService."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from vidgate.api.deps import CurrentUser
from vidgate.api.runtime import Runtime
from vidgate.api.schemas import Camel, Envelope, ErrorEnvelope, WebhookUrl
from vidgate.domain.errors import NotReady
from vidgate.store import webhooks as store
from vidgate.webhooks.service import EVENT_TYPES, WebhookService

router = APIRouter(tags=["webhooks"])
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorEnvelope, "description": "WEBHOOK_NOT_FOUND"},
}

EventTypeName = Literal["taskProgress", "taskCompleted", "taskFailed", "taskCancelled"]
assert set(EventTypeName.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


async def get_webhooks(request: Request) -> WebhookService:
    runtime: Runtime = request.app.state.runtime
    if runtime.webhooks is None:
        raise NotReady("Webhooks are not available on this server.")
    service: WebhookService = runtime.webhooks
    return service


Webhooks = Annotated[WebhookService, Depends(get_webhooks)]


class CreateEndpoint(Camel):
    url: WebhookUrl
    # The service names unknown types in its answer; the document states them.
    event_types: (
        Annotated[
            list[Annotated[str, Field(json_schema_extra={"enum": list(EVENT_TYPES)})]],
            Field(json_schema_extra={"minItems": 1}),
        ]
        | None
    ) = Field(
        default=None,
        max_length=len(EVENT_TYPES),
        description=f"Any of {', '.join(EVENT_TYPES)}; every type when left out.",
    )


class EndpointView(Camel):
    id: str
    url: str
    event_types: list[EventTypeName]
    created_at: datetime
    disabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    rotating_until: datetime | None = Field(
        description="While set, the previous secret still signs too (rotation overlap)."
    )

    @classmethod
    def of(cls, endpoint: store.Endpoint) -> EndpointView:
        types = endpoint.event_types if endpoint.event_types is not None else EVENT_TYPES
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            event_types=list(types),
            created_at=endpoint.created_at,
            disabled=endpoint.disabled_at is not None,
            disabled_at=endpoint.disabled_at,
            disabled_reason=endpoint.disabled_reason,
            rotating_until=endpoint.previous_until if endpoint.previous_secret else None,
        )


class EndpointWithSecret(EndpointView):
    secret: str = Field(description="The signing secret (`whsec_...`). Shown only this once.")


class EndpointList(Camel):
    items: list[EndpointView]


class TaskSecretView(Camel):
    secret: str
    created_at: datetime
    rotating_until: datetime | None


class DeliveryView(Camel):
    delivery_id: str = Field(description="The `webhook-id` header: the same on every retry.")
    event_id: int
    event_type: str
    video_id: str
    status: Literal["pending", "succeeded", "failed", "cancelled"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, d: store.Delivery) -> DeliveryView:
        return cls(
            delivery_id=d.id,
            event_id=d.event_id,
            event_type=d.event_type,
            video_id=d.video_id,
            status=d.status,
            attempts=d.attempts,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            last_attempt_at=d.last_attempt_at,
            next_attempt_at=d.next_attempt_at if d.status == store.PENDING else None,
            created_at=d.created_at,
            finished_at=d.finished_at,
        )


class DeliveryList(Camel):
    items: list[DeliveryView]


class Deleted(Camel):
    id: str
    deleted: bool = True


def _secret_view(secret: store.TaskSecret) -> TaskSecretView:
    return TaskSecretView(
        secret=secret.secret,
        created_at=secret.created_at,
        rotating_until=secret.previous_until if secret.previous_secret else None,
    )


@router.post("/api/webhooks", status_code=201, response_model=Envelope[EndpointWithSecret])
async def create_endpoint(
    body: CreateEndpoint, webhooks: Webhooks, user: CurrentUser
) -> Envelope[EndpointWithSecret]:
    """Register an endpoint. The answer holds its signing secret, shown only this once."""
    endpoint = await webhooks.register(user, url=body.url, event_types=body.event_types)
    view = EndpointView.of(endpoint).model_dump()
    return Envelope(data=EndpointWithSecret(**view, secret=endpoint.secret))


@router.get("/api/webhooks", response_model=Envelope[EndpointList])
async def list_endpoints(webhooks: Webhooks, user: CurrentUser) -> Envelope[EndpointList]:
    items = [EndpointView.of(e) for e in await webhooks.endpoints(user)]
    return Envelope(data=EndpointList(items=items))


@router.get("/api/webhooks/task-secret", response_model=Envelope[TaskSecretView])
async def task_secret(webhooks: Webhooks, user: CurrentUser) -> Envelope[TaskSecretView]:
    """The secret that signs deliveries to your tasks' own `webhookUrl` (made on first use)."""
    return Envelope(data=_secret_view(await webhooks.task_secret(user)))


@router.post("/api/webhooks/task-secret/rotate", response_model=Envelope[TaskSecretView])
async def rotate_task_secret(webhooks: Webhooks, user: CurrentUser) -> Envelope[TaskSecretView]:
    """A new task secret; the old one still signs (a second signature) for 24 h."""
    return Envelope(data=_secret_view(await webhooks.rotate_task_secret(user)))


@router.delete(
    "/api/webhooks/{endpoint_id}", response_model=Envelope[Deleted], responses=_NOT_FOUND
)
async def delete_endpoint(
    endpoint_id: str, webhooks: Webhooks, user: CurrentUser
) -> Envelope[Deleted]:
    """Delete an endpoint; its deliveries not yet sent are cancelled."""
    await webhooks.delete(user, endpoint_id)
    return Envelope(data=Deleted(id=endpoint_id))


@router.post(
    "/api/webhooks/{endpoint_id}/rotate",
    response_model=Envelope[EndpointWithSecret],
    responses=_NOT_FOUND,
)
async def rotate_endpoint(
    endpoint_id: str, webhooks: Webhooks, user: CurrentUser
) -> Envelope[EndpointWithSecret]:
    """A new secret, shown once; the old one still signs (a second signature) for 24 h."""
    endpoint, secret = await webhooks.rotate(user, endpoint_id)
    view = EndpointView.of(endpoint).model_dump()
    return Envelope(data=EndpointWithSecret(**view, secret=secret))


@router.get(
    "/api/webhooks/{endpoint_id}/deliveries",
    response_model=Envelope[DeliveryList],
    responses=_NOT_FOUND,
)
async def list_deliveries(
    endpoint_id: str,
    webhooks: Webhooks,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Envelope[DeliveryList]:
    """The endpoint's deliveries, newest event first."""
    found = await webhooks.deliveries(user, endpoint_id, limit=limit)
    return Envelope(data=DeliveryList(items=[DeliveryView.of(d) for d in found]))


@router.post(
    "/api/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay",
    response_model=Envelope[DeliveryView],
    responses={
        404: {
            "model": ErrorEnvelope,
            "description": "WEBHOOK_NOT_FOUND, WEBHOOK_DELIVERY_NOT_FOUND",
        },
        409: {"model": ErrorEnvelope, "description": "WEBHOOK_DISABLED"},
    },
)
async def replay_delivery(
    endpoint_id: str, delivery_id: str, webhooks: Webhooks, user: CurrentUser
) -> Envelope[DeliveryView]:
    """Send the delivery again (same `webhook-id`), now and with retries as usual."""
    return Envelope(data=DeliveryView.of(await webhooks.replay(user, endpoint_id, delivery_id)))
