"""The webhook routes' own errors, answered through the one error handler."""

from __future__ import annotations

from vidgate.domain.errors import VidgateError


class WebhookNotFound(VidgateError):
    code = "WEBHOOK_NOT_FOUND"
    http_status = 404


class DeliveryNotFound(VidgateError):
    code = "WEBHOOK_DELIVERY_NOT_FOUND"
    http_status = 404


class WebhookLimitReached(VidgateError):
    code = "WEBHOOK_LIMIT_REACHED"
    http_status = 422


class WebhookDisabled(VidgateError):
    code = "WEBHOOK_DISABLED"
    http_status = 409
