"""The AsyncAPI 3 document of the WebSocket ``/ws`` (and the webhook bodies), served at
``/asyncapi.json`` next to ``/openapi.json``, for the server at ``VIDGATE_PUBLIC_URL``.

``SCHEMAS`` are the JSON Schemas of every message ``vidgate.domain.messages`` renders; they
are written once here, strict (``additionalProperties: false``), and tests validate real
frames of a live run against them. The document is built from them per request only for
the server's address.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request

from vidgate import __version__
from vidgate.api.ws import BAD_AFTER_EVENT_ID, MAX_EVENT_ID, POLICY_VIOLATION, TRY_AGAIN_LATER
from vidgate.domain import messages
from vidgate.domain.messages import EventType
from vidgate.domain.status import TaskStatus

router = APIRouter()

ASYNCAPI_VERSION = "3.0.0"
INTERNAL_ERROR = 1011
# Where the schemas live inside the document, for ``$ref``.
REF = "#/components/schemas/"

_MS = {"type": "integer", "minimum": 0, "description": "Unix time in milliseconds."}
_EVENT_ID = {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_ID}
_VIDEO_ID = {"type": "string", "minLength": 1, "description": "vidgate's id of the task."}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _object(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _frame(kind: str, payload: dict[str, Any], description: str) -> dict[str, Any]:
    return _object(
        ["type", "timestamp", "payload"],
        {"type": {"const": kind}, "timestamp": _MS, "payload": payload},
        description=description,
    )


def _event_frame(kind: str, description: str) -> dict[str, Any]:
    schema = _frame(str(kind), _ref("TaskState"), description)
    schema["required"] = ["type", "timestamp", "eventId", "payload"]
    schema["properties"]["eventId"] = {
        **_EVENT_ID,
        "description": "The task_events id: give it back as afterEventId to resume after it.",
    }
    return schema


SCHEMAS: dict[str, dict[str, Any]] = {
    "TaskState": _object(
        ["videoId", "externalVideoId", "status", "progress", "message"],
        {
            "videoId": _VIDEO_ID,
            "externalVideoId": {
                "type": ["string", "null"],
                "description": "The upstream's job id; null until the upstream accepted it.",
            },
            "status": {"enum": sorted({s.pushed for s in TaskStatus})},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "message": {"type": "string"},
            "result": _object(["videoUrl"], {"videoUrl": {"type": ["string", "null"]}}),
            "error": _object(
                ["code", "message"], {"code": {"type": "string"}, "message": {"type": "string"}}
            ),
        },
        description="A task as clients see it: the payload of subscribed and of every task event.",
    ),
    "TaskProgress": _event_frame(
        EventType.PROGRESS, "The task moved on (status, progress, attempt)."
    ),
    "TaskCompleted": _event_frame(
        EventType.COMPLETED, "The video is ready: payload.result.videoUrl."
    ),
    "TaskFailed": _event_frame(EventType.FAILED, "The task failed (or expired): payload.error."),
    "TaskCancelled": _event_frame(EventType.CANCELLED, "The owner cancelled the task."),
    "Subscribed": _object(
        ["type", "timestamp", "eventId", "payload"],
        {
            "type": {"const": messages.SUBSCRIBED},
            "timestamp": _MS,
            "eventId": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "The newest event the snapshot reflects (a resume point).",
            },
            "payload": _ref("TaskState"),
            "resumed": {
                "type": "boolean",
                "description": "Only when the subscribe had afterEventId: true if the events "
                "after it were replayed just before this frame, false if they are no longer "
                "stored and this is a snapshot instead.",
            },
            "reason": {"enum": [messages.EVENTS_EXPIRED]},
        },
        description="The answer to subscribe: the task's current state.",
    ),
    "Error": _frame(
        "error",
        _object(
            ["code", "message"],
            {
                "code": {"type": "string", "examples": ["TASK_NOT_FOUND", BAD_AFTER_EVENT_ID]},
                "message": {"type": "string"},
                "videoId": _VIDEO_ID,
                "retryAfterSeconds": {"type": "number", "minimum": 0},
                "received": {"type": "string"},
            },
        ),
        "A message or subscription was refused; the connection stays open unless closed.",
    ),
    "Pong": _frame("pong", _object([], {}), "The answer to ping."),
    "Authenticated": _frame(
        "authenticated",
        _object(["userId"], {"userId": {"type": "string"}}),
        "The answer to an auth message.",
    ),
    "Unsubscribed": _frame(
        "unsubscribed", _object(["videoId"], {"videoId": _VIDEO_ID}), "The answer to unsubscribe."
    ),
    # client -> server
    "Subscribe": _object(
        ["type", "videoId"],
        {
            "type": {"const": "subscribe"},
            "videoId": _VIDEO_ID,
            "afterEventId": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": MAX_EVENT_ID,
                "description": "Replay the task's events after this id first (a resume).",
            },
        },
    ),
    "Unsubscribe": _object(
        ["type", "videoId"], {"type": {"const": "unsubscribe"}, "videoId": _VIDEO_ID}
    ),
    "Ping": _object(["type"], {"type": {"const": "ping"}}),
    "Auth": _object(["type", "token"], {"type": {"const": "auth"}, "token": {"type": "string"}}),
    # webhooks (POST to the receiver; Standard Webhooks headers)
    "WebhookEvent": _object(
        ["type", "timestamp", "data"],
        {
            "type": {"enum": [str(kind) for kind in EventType]},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": _object(
                ["videoId", "externalVideoId", "status", "progress"],
                {
                    "videoId": _VIDEO_ID,
                    "externalVideoId": {"type": ["string", "null"]},
                    "status": {"enum": sorted({s.pushed for s in TaskStatus})},
                    "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                    "result": {"$ref": REF + "TaskState/properties/result"},
                    "error": {"$ref": REF + "TaskState/properties/error"},
                },
            ),
        },
        description="A thin event: re-read the task for the rest.",
    ),
}

_SERVER_MESSAGES = [
    "Subscribed",
    "TaskProgress",
    "TaskCompleted",
    "TaskFailed",
    "TaskCancelled",
    "Unsubscribed",
    "Pong",
    "Authenticated",
    "Error",
]
_CLIENT_MESSAGES = ["Subscribe", "Unsubscribe", "Ping", "Auth"]


def _message_name(schema: str) -> str:
    return schema[0].lower() + schema[1:]


def _message(schema: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": _message_name(schema),
        "contentType": "application/json",
        "payload": _ref(schema),
    }
    if schema in _ABOUT_A_TASK:
        body["correlationId"] = {"location": "$message.payload#/payload/videoId"}
    return body


_ABOUT_A_TASK = {"Subscribed", "TaskProgress", "TaskCompleted", "TaskFailed", "TaskCancelled"}

CLOSE_CODES = {
    POLICY_VIOLATION: "Credentials missing or refused, or over the request rate (reason = code).",
    TRY_AGAIN_LATER: "Too slow to read (outbox overflow), or the auth service or database is "
    "unavailable: reconnect and resume with afterEventId.",
    INTERNAL_ERROR: "The server could not send: reconnect and resume.",
}

_QUERY = _object(
    [],
    {
        "videoId": {**_VIDEO_ID, "description": "Subscribe to this task at connect."},
        "afterEventId": {
            "type": "string",
            "pattern": "^[0-9]{1,19}$",
            "description": "With videoId: replay its events after this id first.",
        },
        "token": {"type": "string", "description": "API key or JWT (or an Authorization header)."},
    },
)


def document(host: str, scheme: str) -> dict[str, Any]:
    """The AsyncAPI document, for clients reaching the server at ``scheme://host``."""
    channel_messages = {_message_name(n): _message(n) for n in _SERVER_MESSAGES + _CLIENT_MESSAGES}
    webhook = {"webhookEvent": _message("WebhookEvent")}

    def refs(names: list[str], channel: str) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel}/messages/{_message_name(n)}"} for n in names]

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "vidgate WebSocket and webhooks",
            "version": __version__,
            "description": "Live task messages over /ws (docs/API.md, WebSocket), and the "
            "webhook bodies vidgate POSTs (Standard Webhooks). Every task message names its "
            "eventId; a client that reconnects subscribes with afterEventId and misses nothing "
            "(a subscribed frame with resumed=false when those events are past retention).",
        },
        "servers": {
            "vidgate": {
                "host": host,
                "protocol": "wss" if scheme in ("https", "wss") else "ws",
                "description": "This vidgate.",
            }
        },
        "defaultContentType": "application/json",
        "channels": {
            "ws": {
                "address": "/ws",
                "title": "Task messages",
                "description": "One connection, many subscriptions. Close codes: "
                + "; ".join(f"{code} {why}" for code, why in CLOSE_CODES.items()),
                "servers": [{"$ref": "#/servers/vidgate"}],
                "messages": channel_messages,
                "bindings": {"ws": {"method": "GET", "query": _QUERY, "bindingVersion": "0.1.0"}},
                "x-close-codes": {str(code): why for code, why in CLOSE_CODES.items()},
            },
            "webhook": {
                "address": None,
                "title": "Webhook deliveries",
                "description": "POSTed to each registered endpoint and per-task webhookUrl, "
                "signed per Standard Webhooks (webhook-id, webhook-timestamp, "
                "webhook-signature headers).",
                "messages": webhook,
            },
        },
        "operations": {
            "receiveClientMessages": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ws"},
                "summary": "What a client sends: subscribe (optionally afterEventId), "
                "unsubscribe, ping, auth.",
                "messages": refs(_CLIENT_MESSAGES, "ws"),
            },
            "sendTaskMessages": {
                "action": "send",
                "channel": {"$ref": "#/channels/ws"},
                "summary": "What vidgate pushes: snapshots, task events, answers and errors.",
                "messages": refs(_SERVER_MESSAGES, "ws"),
            },
            "deliverWebhooks": {
                "action": "send",
                "channel": {"$ref": "#/channels/webhook"},
                "messages": refs(["WebhookEvent"], "webhook"),
            },
        },
        "components": {"schemas": copy.deepcopy(SCHEMAS)},
    }


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi(request: Request) -> dict[str, Any]:
    # The configured public URL (VIDGATE_PUBLIC_URL), not the request's Host header.
    public = urlsplit(request.app.state.runtime.public_url)
    return document(public.netloc, public.scheme)
