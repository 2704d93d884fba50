"""The Veo simulator against Google's official SDK, and its wire bytes where no SDK looks.

google-genai 3.x drives Vertex only (it refuses ``generate_videos`` in Gemini API mode),
so the Gemini API surface is checked with the last 2.x release, 2.34.0, in a venv of
its own (the project's has 3.x), made once and cached under ~/.cache/vidgate; the
Vertex surface with 3.x in this process, authenticated by google-auth through the
simulator's OAuth token endpoint with a service account made here.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2 import service_account

from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, running_in_thread

GEMINI_SDK = "google-genai==2.34.0"
KEY = "AIza-sim-key"
PROJECT, LOCATION = "vidgate-test", "us-central1"
VERTEX_MODEL = "veo-3.1-generate-001"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def sdk_venv_python() -> Path:
    """The interpreter of a venv holding google-genai 2.34.0, made on first use."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vidgate"
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = cache / f"google-genai-2.34.0-{tag}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    cache.mkdir(parents=True, exist_ok=True)
    # Built beside it and renamed into place, so a half-made venv is never used.
    building = Path(tempfile.mkdtemp(prefix="genai-venv-", dir=cache))
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
    subprocess.run(
        [
            str(building / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            GEMINI_SDK,
        ],
        check=True,
        timeout=300,
    )
    (building / ".complete").write_text(GEMINI_SDK)
    try:
        building.rename(venv)
    except OSError:  # another run finished first
        shutil.rmtree(building, ignore_errors=True)
    return python


# Runs in the 2.34.0 venv: three operations side by side (a video, a filtered one, a
# failed one), each polled with the SDK's own operations.get, then a wrong key.
GEMINI_SCRIPT = r"""
import json, sys, time
from google import genai
from google.genai import errors, types

origin, key = sys.argv[1], sys.argv[2]
def client(api_key):
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(base_url=origin + "/", api_version="v1beta"),
    )

sdk = client(key)
def start(prompt, **config):
    return sdk.models.generate_videos(
        model="veo-3.1-fast-generate-preview",
        source=types.GenerateVideosSource(prompt=prompt),
        config=types.GenerateVideosConfig(**config),
    )

ops = {
    "ok": start("a lighthouse at dusk", aspect_ratio="9:16", duration_seconds=6,
                negative_prompt="fog", person_generation="allow_all"),
    "filtered": start("[fail] a lighthouse"),
    "error": start("[error] a lighthouse"),
}
out = {"version": genai.__version__, "created": {k: [o.name, o.done] for k, o in ops.items()}}
deadline = time.time() + 20
while not all(o.done for o in ops.values()) and time.time() < deadline:
    time.sleep(0.1)
    ops = {k: o if o.done else sdk.operations.get(o) for k, o in ops.items()}

video = ops["ok"].response.generated_videos[0].video
# files.download wants "files/<id>": it reads ids out of https:// URIs only.
file_id = video.uri.split("/files/")[1].split(":")[0]
data = sdk.files.download(file=f"files/{file_id}")
out["ok"] = {"done": ops["ok"].done, "uri": video.uri, "size": len(data), "box": data[4:8].decode()}
filtered = ops["filtered"].response
out["filtered"] = {
    "done": ops["filtered"].done,
    "count": filtered.rai_media_filtered_count,
    "reasons": filtered.rai_media_filtered_reasons,
    "videos": filtered.generated_videos,
}
out["error"] = {"done": ops["error"].done, "error": ops["error"].error,
                "response": ops["error"].response is not None}
wrong = client("wrong-key")
try:
    wrong.models.generate_videos(
        model="veo-3.1-fast-generate-preview", source=types.GenerateVideosSource(prompt="x")
    )
except errors.ClientError as exc:
    out["badKey"] = {"code": exc.code, "status": exc.status, "message": exc.message}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimConfig(protocol="gemini-veo", prefix="/v1beta", job_seconds=1.0, api_key=KEY)
    with running_in_thread(config) as simulator:
        yield simulator


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_service_account(path: Path, token_uri: str) -> Path:
    pem = (
        rsa_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": f"vidgate@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "100000000000000000001",
                "token_uri": token_uri,
            }
        )
    )
    return path


@pytest.fixture
def vertex_client(sim: RunningSimulator, tmp_path: Path) -> genai.Client:
    account = write_service_account(tmp_path / "sa.json", f"{sim.origin}/token")
    credentials = service_account.Credentials.from_service_account_file(
        str(account), scopes=[SCOPE]
    )
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        http_options=types.HttpOptions(base_url=sim.origin + "/", api_version="v1"),
    )


def poll(client: genai.Client, operation: Any) -> Any:
    deadline = time.monotonic() + 15
    while not operation.done and time.monotonic() < deadline:
        time.sleep(0.1)
        operation = client.operations.get(operation)
    return operation


# -- the official SDKs -----------------------------------------------------------------


def test_gemini_api_through_the_2_34_sdk(sim: RunningSimulator, tmp_path: Path) -> None:
    script = tmp_path / "gemini_sdk.py"
    script.write_text(GEMINI_SCRIPT)
    ran = subprocess.run(
        [str(sdk_venv_python()), str(script), sim.origin, KEY],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["version"] == "2.34.0"
    for name, done in out["created"].values():
        assert name.startswith("models/veo-3.1-fast-generate-preview/operations/")
        assert done is None  # Google leaves `done` out while the operation runs
    assert out["ok"]["done"] is True
    assert out["ok"]["uri"].startswith(f"{sim.origin}/v1beta/files/")
    assert out["ok"]["uri"].endswith(":download?alt=media")
    assert out["ok"]["box"] == "ftyp" and out["ok"]["size"] > 1000
    assert out["filtered"]["done"] is True
    assert out["filtered"]["count"] == 1 and out["filtered"]["videos"] is None
    assert "Responsible AI" in out["filtered"]["reasons"][0]
    assert out["error"] == {
        "done": True,
        "error": {"code": 13, "message": "Video generation failed due to an internal error."},
        "response": False,
    }
    assert out["badKey"] == {
        "code": 400,
        "status": "INVALID_ARGUMENT",
        "message": "API key not valid. Please pass a valid API key.",
    }
    # The SDK's config reached the job: 9:16 at 6 seconds.
    ok = next(j for j in sim.state.jobs if j.prompt == "a lighthouse at dusk")
    assert (ok.model, ok.size, ok.seconds) == ("veo-3.1-fast-generate-preview", "720x1280", "6")


def test_sdk_3_refuses_the_gemini_api_so_2_34_is_needed() -> None:
    client = genai.Client(api_key=KEY)
    with pytest.raises(ValueError, match="not in Gemini Developer API mode"):
        client.models.generate_videos(
            model="veo-3.1-generate-preview", source=types.GenerateVideosSource(prompt="x")
        )


def test_vertex_through_the_3_x_sdk_with_a_service_account(
    sim: RunningSimulator, vertex_client: genai.Client
) -> None:
    operation = vertex_client.models.generate_videos(
        model=VERTEX_MODEL,
        source=types.GenerateVideosSource(prompt="a red fox in snow"),
        config=types.GenerateVideosConfig(
            seed=7, generate_audio=False, number_of_videos=2, duration_seconds=4
        ),
    )
    prefix = f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{VERTEX_MODEL}"
    assert operation.name is not None and operation.name.startswith(f"{prefix}/operations/")
    assert operation.done is None
    operation = poll(vertex_client, operation)
    assert operation.done is True and operation.error is None
    videos = operation.response.generated_videos
    assert len(videos) == 2
    for generated in videos:
        assert generated.video.mime_type == "video/mp4"
        assert generated.video.video_bytes[4:8] == b"ftyp"  # inline: no storageUri given
    requests = sim.stats()["requests"]
    assert requests["POST /token"] >= 1
    fetches = (
        "POST /{version}/projects/{project}/locations/{location}/publishers/google/models/"
        "{model}:fetchPredictOperation"
    )
    assert requests[fetches] >= 1


def test_vertex_gcs_output_and_filter(vertex_client: genai.Client) -> None:
    stored = vertex_client.models.generate_videos(
        model=VERTEX_MODEL,
        source=types.GenerateVideosSource(prompt="a heron"),
        config=types.GenerateVideosConfig(output_gcs_uri="gs://vidgate-bucket/out"),
    )
    filtered = vertex_client.models.generate_videos(
        model=VERTEX_MODEL, source=types.GenerateVideosSource(prompt="[fail] a heron")
    )
    stored, filtered = poll(vertex_client, stored), poll(vertex_client, filtered)
    operation_id = stored.name.rpartition("/")[2]
    [video] = stored.response.generated_videos
    assert video.video.uri == f"gs://vidgate-bucket/out/{operation_id}/sample_0.mp4"
    assert video.video.video_bytes is None
    assert filtered.done is True
    assert filtered.response.rai_media_filtered_count == 1
    assert not filtered.response.generated_videos


def test_vertex_sdk_sees_google_errors(vertex_client: genai.Client) -> None:
    with pytest.raises(genai_errors.ClientError) as caught:
        vertex_client.models.generate_videos(
            model="veo-2.0-generate-001", source=types.GenerateVideosSource(prompt="x")
        )
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert "Publisher Model" in (caught.value.message or "")
    with pytest.raises(genai_errors.ClientError) as caught:
        vertex_client.models.generate_videos(
            model=VERTEX_MODEL,
            source=types.GenerateVideosSource(prompt="x"),
            config=types.GenerateVideosConfig(duration_seconds=5),
        )
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"


# -- wire bytes: authentication --------------------------------------------------------


def gemini_create(sim: RunningSimulator, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{sim.base_url}/models/veo-3.1-generate-preview:predictLongRunning",
        json=body,
        headers=headers,
    )


def test_gemini_key_refusals_exactly_as_google(sim: RunningSimulator) -> None:
    body = {"instances": [{"prompt": "x"}]}
    missing = gemini_create(sim, body)
    assert missing.status_code == 403
    assert missing.json() == {
        "error": {
            "code": 403,
            "message": "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
            "status": "PERMISSION_DENIED",
        }
    }
    wrong = gemini_create(sim, body, **{"x-goog-api-key": "nope"})
    assert wrong.status_code == 400
    error = wrong.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["details"][0] == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    # The key may also come as ?key=, as Google's examples send it.
    by_query = httpx.post(
        f"{sim.base_url}/models/veo-3.1-generate-preview:predictLongRunning?key={KEY}",
        json=body,
    )
    assert by_query.status_code == 200
    assert set(by_query.json()) == {"name"}


def vertex_url(sim: RunningSimulator, verb: str) -> str:
    return (
        f"{sim.origin}/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/"
        f"{VERTEX_MODEL}:{verb}"
    )


def test_vertex_bearer_refusals(sim: RunningSimulator) -> None:
    body = {"instances": [{"prompt": "x"}]}
    missing = httpx.post(vertex_url(sim, "predictLongRunning"), json=body)
    assert missing.status_code == 401
    error = missing.json()["error"]
    assert (error["code"], error["status"]) == (401, "UNAUTHENTICATED")
    assert error["message"].startswith("Request is missing required authentication credential.")
    assert error["details"][0]["reason"] == "CREDENTIALS_MISSING"
    # A key is no bearer, and neither is a token this simulator never issued.
    for header in (f"Bearer {KEY}", "Bearer ya29.forged"):
        refused = httpx.post(
            vertex_url(sim, "predictLongRunning"), json=body, headers={"Authorization": header}
        )
        assert refused.status_code == 401
        assert refused.json()["error"]["message"].startswith(
            "Request had invalid authentication credentials."
        )


def assertion(**claims: Any) -> str:
    key = rsa_key()
    now = int(time.time())
    payload = {
        "iss": "vidgate@x.iam.gserviceaccount.com",
        "aud": "https://oauth2.googleapis.com/token",
        "scope": SCOPE,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256")


def test_token_endpoint_issues_and_refuses(sim: RunningSimulator) -> None:
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    issued = httpx.post(f"{sim.origin}/token", data={"grant_type": grant, "assertion": assertion()})
    assert issued.status_code == 200
    token = issued.json()
    assert set(token) == {"access_token", "expires_in", "token_type"}
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3599
    accepted = httpx.post(
        vertex_url(sim, "predictLongRunning"),
        json={"instances": [{"prompt": "x"}]},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert accepted.status_code == 200

    cases = [
        ({"grant_type": "client_credentials", "assertion": assertion()}, "unsupported_grant_type"),
        ({"grant_type": grant, "assertion": "not-a-jwt"}, "invalid_grant"),
        (
            {"grant_type": grant, "assertion": assertion(exp=int(time.time()) + 7200)},
            "invalid_grant",
        ),
        (
            {"grant_type": grant, "assertion": assertion(aud="https://elsewhere/token")},
            "invalid_grant",
        ),
        ({"grant_type": grant, "assertion": assertion(scope="")}, "invalid_scope"),
    ]
    for form, error in cases:
        refused = httpx.post(f"{sim.origin}/token", data=form)
        assert refused.status_code == 400, form
        assert refused.json()["error"] == error
        assert set(refused.json()) == {"error", "error_description"}


# -- wire bytes: validation, operations, expiry, faults --------------------------------


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"seed": 1}, "`seed` isn't supported by this model."),
        ({"generateAudio": True}, "`generateAudio` isn't supported by this model."),
        ({"durationSeconds": 5}, "The number value for `durationSeconds` is out of bound."),
        ({"aspectRatio": "1:1"}, "Aspect ratio '1:1' is not supported."),
        ({"resolution": "1080p", "durationSeconds": 4}, "Resolution '1080p' requires"),
        ({"sampleCount": 2}, "`sampleCount` must be between 1 and 1."),
    ],
)
def test_gemini_parameter_validation(
    sim: RunningSimulator, parameters: dict[str, Any], message: str
) -> None:
    answer = gemini_create(
        sim, {"instances": [{"prompt": "x"}], "parameters": parameters}, **{"x-goog-api-key": KEY}
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"].startswith(message)


def test_gemini_unknown_model_and_operation(sim: RunningSimulator) -> None:
    headers = {"x-goog-api-key": KEY}
    missing = httpx.post(
        f"{sim.base_url}/models/veo-2.0-generate-001:predictLongRunning",
        json={"instances": [{"prompt": "x"}]},
        headers=headers,
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["message"].startswith(
        "models/veo-2.0-generate-001 is not found for API version v1beta"
    )
    gone = httpx.get(
        f"{sim.base_url}/models/veo-3.1-generate-preview/operations/abc123", headers=headers
    )
    assert gone.status_code == 404
    assert gone.json() == {
        "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
    }


def test_gemini_file_expires_with_its_expiration_time() -> None:
    config = SimConfig(
        protocol="gemini-veo",
        prefix="/v1beta",
        job_seconds=0.3,
        expires_after_seconds=1.0,
        api_key=KEY,
    )
    headers = {"x-goog-api-key": KEY}
    with running_in_thread(config) as sim:
        created = gemini_create(sim, {"instances": [{"prompt": "a kite"}]}, **headers)
        name = created.json()["name"]
        time.sleep(0.4)
        operation = httpx.get(f"{sim.base_url}/{name}", headers=headers).json()
        assert operation["done"] is True
        [sample] = operation["response"]["generateVideoResponse"]["generatedSamples"]
        uri = sample["video"]["uri"]
        file_id = uri.split("/files/")[1].partition(":")[0]
        meta = httpx.get(f"{sim.base_url}/files/{file_id}", headers=headers).json()
        assert meta["state"] == "ACTIVE" and meta["source"] == "GENERATED"
        assert meta["downloadUri"] == uri
        job = next(iter(sim.state.jobs))
        expires = job.created_at + job.duration + 1.0
        stated = datetime.fromisoformat(meta["expirationTime"].replace("Z", "+00:00"))
        assert meta["expirationTime"].endswith("Z")
        assert abs(stated.timestamp() - expires) < 1e-5
        assert httpx.get(uri).status_code == 403  # the download wants the key too
        ranged = httpx.get(uri, headers={**headers, "Range": "bytes=0-7"})
        assert ranged.status_code == 206 and ranged.content[4:8] == b"ftyp"
        time.sleep(max(0.0, expires - time.time()) + 0.05)
        expired = httpx.get(uri, headers=headers)
        assert expired.status_code == 403
        assert expired.json()["error"] == {
            "code": 403,
            "message": f"You do not have permission to access the File {file_id} or it may "
            "not exist.",
            "status": "PERMISSION_DENIED",
        }


def test_injected_faults_in_each_surface_envelope(sim: RunningSimulator) -> None:
    token = httpx.post(
        f"{sim.origin}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion(),
        },
    ).json()["access_token"]
    body = {"instances": [{"prompt": "x"}]}
    httpx.post(
        f"{sim.origin}/_sim/faults", json={"error_429_rate": 1.0, "retry_after_seconds": 2.5}
    )
    try:
        gemini = gemini_create(sim, body, **{"x-goog-api-key": KEY})
        vertex = httpx.post(
            vertex_url(sim, "predictLongRunning"),
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        httpx.post(f"{sim.origin}/_sim/faults", json={"error_429_rate": 0.0})
    assert gemini.status_code == 429 and "retry-after" not in gemini.headers
    error = gemini.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["message"].startswith("You exceeded your current quota")
    assert error["details"][-1] == {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "2.5s",
    }
    assert vertex.status_code == 429
    assert vertex.json() == {
        "error": {
            "code": 429,
            "message": "Resource exhausted. Please try again later. Please refer to "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more "
            "details.",
            "status": "RESOURCE_EXHAUSTED",
        }
    }
    words = {}
    for rate in ("error_500_rate", "error_503_rate"):
        httpx.post(f"{sim.origin}/_sim/faults", json={rate: 1.0})
        try:
            answer = gemini_create(sim, body, **{"x-goog-api-key": KEY})
        finally:
            httpx.post(f"{sim.origin}/_sim/faults", json={rate: 0.0})
        words[answer.status_code] = answer.json()["error"]["status"]
    assert words == {500: "INTERNAL", 503: "UNAVAILABLE"}
    faults = sim.stats()["faultsInjected"]
    assert faults["error429"] >= 2 and faults["error500"] >= 1 and faults["error503"] >= 1


def test_vertex_fetch_wants_an_operation_of_its_model(sim: RunningSimulator) -> None:
    token = httpx.post(
        f"{sim.origin}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion(),
        },
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    name = httpx.post(
        vertex_url(sim, "predictLongRunning"),
        json={"instances": [{"prompt": "[stuck] x"}]},
        headers=headers,
    ).json()["name"]
    running = httpx.post(
        vertex_url(sim, "fetchPredictOperation"), json={"operationName": name}, headers=headers
    )
    assert running.json() == {"name": name}  # `done` left out while it runs
    elsewhere = name.replace(VERTEX_MODEL, "veo-3.1-fast-generate-001")
    refused = httpx.post(
        vertex_url(sim, "fetchPredictOperation"), json={"operationName": elsewhere}, headers=headers
    )
    assert refused.status_code == 400
    unknown = httpx.post(
        vertex_url(sim, "fetchPredictOperation"),
        json={"operationName": name[:-4] + "0000"},
        headers=headers,
    )
    assert unknown.status_code == 404


def test_inline_image_is_checked(sim: RunningSimulator) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    headers = {"x-goog-api-key": KEY}
    good = gemini_create(
        sim,
        {
            "instances": [
                {"prompt": "x", "image": {"bytesBase64Encoded": png, "mimeType": "image/png"}}
            ]
        },
        **headers,
    )
    assert good.status_code == 200
    gcs = gemini_create(
        sim,
        {
            "instances": [
                {"prompt": "x", "image": {"gcsUri": "gs://b/i.png", "mimeType": "image/png"}}
            ]
        },
        **headers,
    )
    assert gcs.status_code == 400
    assert gcs.json()["error"]["message"].startswith("`gcsUri` isn't supported by this model.")
    last_alone = gemini_create(
        sim,
        {
            "instances": [
                {"prompt": "x", "lastFrame": {"bytesBase64Encoded": png, "mimeType": "image/png"}}
            ]
        },
        **headers,
    )
    assert last_alone.status_code == 400
