"""The OpenAPI document as the running server really behaves.

FastAPI derives the document from the routes, which do not change with the settings; the
auth mode does change what a client must send. So the document is tailored once, when
first asked for, to the auth mode:

- mode ``none`` reads no credentials: no security scheme, no ``security`` requirement and
  no 401 answer anywhere (a generated client would otherwise demand a token);
- the other modes require the bearer scheme on every route that authenticates; a route
  that also takes a credential in a query parameter, for a browser element that cannot
  send a header, marks it with ``openapi_extra={QUERY_CREDENTIAL: "<parameter>"}`` and
  gets that as the other way in (the video stream's ``access_token``, the SSE streams'
  ``token``). Routes that authenticate nobody (/healthz) do not answer 401.

and to what FastAPI cannot say: an optional parameter is left out rather than sent as
null, and the fragments below that routes and bodies point at. Constraints the code
checks by hand are stated by the routes and bodies themselves (``vidgate.api.patterns``).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from vidgate.api import patterns

BEARER = "HTTPBearer"  # the scheme name FastAPI gives ``deps._bearer``
QUERY_CREDENTIAL = "x-vidgate-query-credential"
# The query parameters that may carry a credential: their security scheme's name and
# what the credential is.
_QUERY_SCHEMES = {
    "access_token": (
        "accessToken",
        "The token in a task's `videoUrl`: lets a `<video>` element, which cannot send "
        "credentials, play the video.",
    ),
    "token": (
        "queryToken",
        "The API key or JWT, for clients that cannot send an Authorization header (a "
        "browser's EventSource), as `/ws` takes it.",
    ),
}


# ``GET /api/admin/tasks`` takes exactly one of ``videoId`` and ``externalVideoId``. Two
# query parameters cannot say "exactly one"; one exploded object parameter can, and it is
# sent the same way (``?videoId=...`` or ``?externalVideoId=...``).
ADMIN_TASK_LOOKUP: dict[str, Any] = {
    "name": "lookup",
    "in": "query",
    "required": True,
    "style": "form",
    "explode": True,
    "description": "Exactly one of `videoId` (vidgate's id) and `externalVideoId` (the "
    "upstream's); other query parameters are ignored.",
    "schema": {
        "type": "object",
        "properties": {
            "videoId": {"type": "string", "maxLength": 128},
            "externalVideoId": {"type": "string", "maxLength": 255},
        },
        "oneOf": [{"required": ["videoId"]}, {"required": ["externalVideoId"]}],
    },
}


# Any JSON value without a NUL character in a string or a key (``CreateTask.extra``): a
# recursive schema, so a component; each keyword applies to its own type only.
JSON_WITHOUT_NUL = "JsonWithoutNul"
JSON_WITHOUT_NUL_REF = f"#/components/schemas/{JSON_WITHOUT_NUL}"
_JSON_WITHOUT_NUL_SCHEMA = {
    "description": "Any JSON value without a NUL character in a string or a key.",
    "pattern": patterns.NO_NUL,
    "propertyNames": {"pattern": patterns.NO_NUL},
    "items": {"$ref": JSON_WITHOUT_NUL_REF},
    "additionalProperties": {"$ref": JSON_WITHOUT_NUL_REF},
}


def install(app: FastAPI, *, auth_mode: str) -> None:
    """Serve ``app``'s document tailored to ``auth_mode`` at /openapi.json and /docs."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = tailored(build(), auth_mode)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def tailored(document: dict[str, Any], auth_mode: str) -> dict[str, Any]:
    """``document`` (changed in place) as a server in ``auth_mode`` behaves."""
    schemes: dict[str, Any] = {}
    for operation in _operations(document):
        for parameter in operation.get("parameters", []):
            _not_null(parameter)
        credential = operation.pop(QUERY_CREDENTIAL, None)
        if auth_mode == "none":
            operation.pop("security", None)
        elif credential is not None:
            # The parameter becomes a security scheme: the bearer token or it.
            name, description = _QUERY_SCHEMES[credential]
            schemes[name] = {
                "type": "apiKey",
                "in": "query",
                "name": credential,
                "description": description,
            }
            operation["security"] = [{BEARER: []}, {name: []}]
            operation["parameters"] = [
                p for p in operation.get("parameters", []) if p.get("name") != credential
            ]
        if "security" not in operation:
            operation.get("responses", {}).pop("401", None)
    components = document.setdefault("components", {})
    if JSON_WITHOUT_NUL_REF in json.dumps(document):  # not in a worker's document
        components.setdefault("schemas", {})[JSON_WITHOUT_NUL] = _JSON_WITHOUT_NUL_SCHEMA
    if auth_mode == "none":
        components.pop("securitySchemes", None)
    else:
        components.setdefault("securitySchemes", {}).update(schemes)
    return document


def _not_null(parameter: dict[str, Any]) -> None:
    """An optional parameter is left out, never null: FastAPI declares ``str | None``
    as ``anyOf [string, null]``, and a client would send the text "null"."""
    schema = parameter.get("schema", {})
    branches = schema.get("anyOf")
    if branches and {"type": "null"} in branches:
        kept = [b for b in branches if b != {"type": "null"}]
        del schema["anyOf"]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return [
        operation
        for path in document.get("paths", {}).values()
        for method, operation in path.items()
        if method in methods
    ]
