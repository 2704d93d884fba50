"""Veo's routes on both Google surfaces. Routes parse, check, then delegate to ``wire``.

Gemini API, under the prefix (``/v1beta``), key in ``x-goog-api-key`` or ``?key=``:

- ``POST /models/{model}:predictLongRunning`` -> ``{"name": "models/{model}/operations/{id}"}``
- ``GET /models/{model}/operations/{id}`` -> the operation
- ``GET /files/{id}`` (metadata, with ``expirationTime``), ``GET /files/{id}:download?alt=media``

Vertex AI, at the origin root (``v1`` or ``v1beta1``), an OAuth bearer from ``/token``:

- ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:predictLongRunning``
- ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:fetchPredictOperation``
  with ``{"operationName": name}``
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from vidgate.simulator import faults, jobs, media, ranges, validation
from vidgate.simulator.deps import StateDep, api_guard
from vidgate.simulator.protocols.veo import google, oauth, wire
from vidgate.simulator.state import SimState

ERROR_TRIGGER = "[error]"
NOT_FOUND = "Requested entity was not found."
VERTEX_VERSIONS = ("v1", "v1beta1")


def require_api_key(request: Request, state: StateDep) -> None:
    """The Gemini API's key check: missing is a 403, wrong a 400 (as Google answers)."""
    expected = state.config.api_key
    if expected is None:
        return
    given = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if not given:
        raise google.GoogleError(
            403,
            "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
        )
    if not secrets.compare_digest(given.encode(), expected.encode()):
        message = "API key not valid. Please pass a valid API key."
        raise google.GoogleError(
            400,
            message,
            details=[
                google.error_info("API_KEY_INVALID", google.GEMINI_SERVICE),
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": message,
                },
            ],
        )


async def receive_body(request: Request) -> None:
    """Take the whole body in before latency or faults apply: a request that reached
    Google in full is acted on even when its client goes away while waiting for the
    answer (Starlette keeps the body for the route)."""
    try:
        await request.body()
    except ClientDisconnect:
        raise google.GoogleError(400, "The request body did not arrive.") from None


gemini = APIRouter(
    dependencies=[Depends(receive_body), Depends(api_guard), Depends(require_api_key)]
)
vertex = APIRouter(
    dependencies=[Depends(receive_body), Depends(api_guard), Depends(oauth.require_bearer)]
)


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise google.GoogleError(400, "Invalid JSON payload received. Unexpected token.") from None


def _create_job(state: SimState, parsed: wire.Submission, model: str) -> jobs.Job:
    job = state.create_job(
        validation.CreateParams(
            prompt=parsed.prompt, model=model, seconds=str(parsed.seconds), size=parsed.size
        )
    )
    if ERROR_TRIGGER in parsed.prompt and job.outcome is not jobs.Outcome.FAIL:
        # `[error]`: an internal failure of the generation (worth a retry), not a filter.
        job = dataclasses.replace(job, outcome=jobs.Outcome.FAIL, error=faults.GENERATION_ERROR)
        state.jobs.add(job)
        state.stats.count_fault(faults.Fault.JOB_FAIL)
    return job


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


# -- Gemini API ------------------------------------------------------------------------


@gemini.post("/models/{model}:predictLongRunning")
async def gemini_create(model: str, request: Request, state: StateDep) -> Response:
    if model not in wire.GEMINI_MODELS:
        raise google.GoogleError(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for "
            "predictLongRunning. Call ListModels to see the list of available models and "
            "their supported methods.",
        )
    parsed = wire.parse(await _json(request), model=model, vertex=False)
    job = _create_job(state, parsed, model)
    name = f"models/{model}/operations/{wire.new_gemini_operation_id()}"
    file_ids = tuple(wire.new_gemini_operation_id() for _ in range(parsed.samples))
    veo = wire.veo_state(state)
    veo.operations[name] = wire.Operation(
        name=name,
        job_id=job.id,
        vertex=False,
        model=model,
        samples=parsed.samples,
        file_ids=file_ids,
    )
    veo.files.update(dict.fromkeys(file_ids, job.id))
    return JSONResponse({"name": name})


@gemini.get("/models/{model}/operations/{operation_id}")
async def gemini_operation(
    model: str, operation_id: str, request: Request, state: StateDep
) -> Response:
    operation = wire.veo_state(state).operations.get(f"models/{model}/operations/{operation_id}")
    job = state.jobs.get(operation.job_id) if operation and not operation.vertex else None
    if operation is None or job is None:
        raise google.GoogleError(404, NOT_FOUND)
    body = wire.operation_body(
        operation,
        job,
        state.clock(),
        download_base=_origin(request) + state.config.prefix,
    )
    return JSONResponse(body)


def _file_job(state: SimState, file_id: str) -> tuple[jobs.Job, jobs.Phase]:
    """A generated file's job while the file exists: completed and not yet expired."""
    job_id = wire.veo_state(state).files.get(file_id)
    job = state.jobs.get(job_id) if job_id else None
    if job is not None:
        phase = jobs.phase(job, state.clock())
        if phase.status == "completed" and (
            phase.expires_at is None or state.clock() < phase.expires_at
        ):
            return job, phase
    # Google's wording for a file that is gone (expired) or never was.
    raise google.GoogleError(
        403,
        f"You do not have permission to access the File {file_id} or it may not exist.",
    )


async def _video(state: SimState, job: jobs.Job) -> bytes:
    rendered = await state.media.get(media.MediaSpec(prompt=job.prompt, size=job.size))
    return rendered.video


# Registered before GET /files/{file_id}, whose parameter would also match "x:download".
@gemini.get("/files/{file_id}:download")
async def gemini_download(
    file_id: str,
    request: Request,
    state: StateDep,
    alt: Annotated[str | None, Query()] = None,
) -> Response:
    job, _phase = _file_job(state, file_id)
    if alt != "media":
        raise google.GoogleError(400, "Download requires the query parameter alt=media.")
    return ranges.bytes_response(
        await _video(state, job), "video/mp4", request.headers.get("range")
    )


@gemini.get("/files/{file_id}")
async def gemini_file(file_id: str, request: Request, state: StateDep) -> Response:
    job, phase = _file_job(state, file_id)
    base = _origin(request) + state.config.prefix
    finished = phase.finished_at or job.created_at
    return JSONResponse(
        {
            "name": f"files/{file_id}",
            "mimeType": "video/mp4",
            "sizeBytes": str(len(await _video(state, job))),
            "createTime": wire.rfc3339(finished),
            "updateTime": wire.rfc3339(finished),
            "expirationTime": wire.rfc3339(phase.expires_at or finished),
            "uri": f"{base}/files/{file_id}",
            "downloadUri": f"{base}/files/{file_id}:download?alt=media",
            "state": "ACTIVE",
            "source": "GENERATED",
        }
    )


# -- Vertex AI -------------------------------------------------------------------------

_MODEL_PATH = "/{version}/projects/{project}/locations/{location}/publishers/google/models/{model}"


def _publisher_model(version: str, project: str, location: str, model: str) -> str:
    if version not in VERTEX_VERSIONS:
        raise google.GoogleError(404, NOT_FOUND)
    return f"projects/{project}/locations/{location}/publishers/google/models/{model}"


@vertex.post(_MODEL_PATH + ":predictLongRunning")
async def vertex_create(
    version: str, project: str, location: str, model: str, request: Request, state: StateDep
) -> Response:
    resource = _publisher_model(version, project, location, model)
    if model not in wire.VERTEX_MODELS:
        raise google.GoogleError(
            404,
            f"Publisher Model `{resource}` was not found or your project does not have access "
            "to it. Please ensure you are using a valid model version. For more information, "
            "see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
        )
    parsed = wire.parse(await _json(request), model=model, vertex=True)
    job = _create_job(state, parsed, model)
    name = f"{resource}/operations/{wire.new_vertex_operation_id()}"
    wire.veo_state(state).operations[name] = wire.Operation(
        name=name,
        job_id=job.id,
        vertex=True,
        model=model,
        samples=parsed.samples,
        storage_uri=parsed.storage_uri,
    )
    return JSONResponse({"name": name})


@vertex.post(_MODEL_PATH + ":fetchPredictOperation")
async def vertex_fetch(
    version: str, project: str, location: str, model: str, request: Request, state: StateDep
) -> Response:
    resource = _publisher_model(version, project, location, model)
    body = await _json(request)
    name = body.get("operationName") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.startswith(f"{resource}/operations/"):
        raise google.GoogleError(400, f"`operationName` must name an operation of {resource}.")
    operation = wire.veo_state(state).operations.get(name)
    job = state.jobs.get(operation.job_id) if operation and operation.vertex else None
    if operation is None or job is None:
        raise google.GoogleError(404, NOT_FOUND)
    now = state.clock()
    video_b64 = None
    phase = jobs.phase(job, now)
    if phase.status == "completed" and operation.storage_uri is None:
        # Without storageUri, Vertex answers the video itself, base64 in the operation.
        video_b64 = base64.b64encode(await _video(state, job)).decode("ascii")
    return JSONResponse(
        wire.operation_body(
            operation, job, now, download_base=_origin(request), video_b64=video_b64
        )
    )
