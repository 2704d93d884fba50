"""Property-based conformance: generated requests against a live vidgate's /openapi.json,
with every check schemathesis has, in auth mode ``none`` and in auth mode ``apikey``.

The document differs per mode (``vidgate.api.openapi``), so each mode has its own,
built at collection time (schemathesis' fixture-loaded schemas do not run under pytest
9), and a test checks it is exactly what that mode's live server serves. Every operation
gets generated requests, valid and invalid, over a real socket; in ``apikey`` mode with a
real admin key made by ``vidgate keys create``, and schemathesis also sends them without
a key and with a wrong one. Whatever comes back must not be a 5xx and must be documented
(status, content type, headers, body); valid requests must be accepted and invalid ones
refused; a required credential must be enforced. In CI (``CI`` set) at least
``CI_CASES`` requests are made per mode; locally fewer, to keep the loop quick.

Two things the document states but no generator can guess are taught to schemathesis:
the listing ``cursor`` format (only a ``nextCursor`` this server issued is one), and that
some refusals of a well-formed request depend on the server's state, not on the request
(``STATE_REFUSALS``: whether a model exists and takes the requested duration, size or
images is the configured catalogue's answer; an Idempotency-Key reused with another
body; a user's webhook endpoint limit). The servers allow private addresses in
``inputReference`` and webhook URLs, as the public-address rule depends on DNS when the
request is made, not on the URL's form, which is what the document states.

Left out: ``GET /api/video/events`` (the caller's stream of all events never ends). The
single-task stream is covered: generated ids name no task, so it answers at once.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, CheckContext, is_check_class, load_all_checks
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support import VIDGATE, VidgateServer, clean_env, launch_vidgate
from vidgate.api import patterns
from vidgate.api.app import create_app
from vidgate.config import Settings
from vidgate.store.base import encode_cursor

CI = bool(os.environ.get("CI"))
# Per mode; 800 requests in all keep the module under a minute on CI's two cores.
CI_CASES = 400
LOCAL_CASES = 200
MODES = ("none", "apikey")
KEY = re.compile(r"^key\s+(vg_\S+)$", re.MULTILINE)
# Never-ending streams (text/event-stream); anything else that streams events must end.
NEVER_ENDING = {"/api/video/events"}
# Refusals of a well-formed request that depend on the server's state, not on the request:
# the configured model catalogue, an Idempotency-Key used before with another body (422,
# as the IETF draft says), the webhook endpoints a user already has. (The /v1 face
# spells the codes in lower case, and answers them 400.)
STATE_REFUSALS = {
    "UNKNOWN_MODEL",
    "MODEL_RETIRED",
    "UNSUPPORTED_PARAMETER",
    "IDEMPOTENCY_KEY_REUSED",
    "WEBHOOK_LIMIT_REACHED",
}


def accepts_valid_data(
    ctx: CheckContext, response: Response, case: schemathesis.Case[Any]
) -> bool | None:
    """``positive_data_acceptance``, except for refusals that depend on the state."""
    if response.status_code in (400, 422):  # the /v1 face answers 400, as OpenAI does
        try:
            code = str(response.json()["error"]["code"]).upper()
        except (ValueError, KeyError, TypeError):
            code = None
        if code in STATE_REFUSALS:
            return None
    return positive_data_acceptance(ctx, response, case)


load_all_checks()
EVERY_CHECK = [
    accepts_valid_data if check is positive_data_acceptance else check
    for check in CHECKS.get_all()
    if not is_check_class(check)
]
schemathesis.openapi.format(
    patterns.CURSOR_FORMAT,
    st.just("")  # the first page
    | st.builds(
        encode_cursor,
        st.datetimes(timezones=st.just(UTC)),
        st.uuids(version=4).map(lambda u: f"video_{u}"),
    ),
)

# Requests made, per mode and operation; read by the last test of the module. One
# process's count: under pytest-xdist the suite is spread by file (``--dist loadfile``),
# so this whole module runs on one worker, in order.
calls: Counter[tuple[str, str]] = Counter()


def launch(tmp_path_factory: pytest.TempPathFactory, mode: str) -> VidgateServer:
    return launch_vidgate(
        tmp_path_factory.mktemp(f"schemathesis-{mode}"),
        job_seconds=1.0,
        VIDGATE_AUTH_MODE=mode,
        VIDGATE_INPUT_REFERENCE_ALLOW_PRIVATE="true",
        VIDGATE_WEBHOOK_ALLOW_PRIVATE="true",
    )


@pytest.fixture(scope="module")
def none_vidgate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    server = launch(tmp_path_factory, "none")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def apikey_vidgate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    server = launch(tmp_path_factory, "apikey")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin_key(apikey_vidgate: VidgateServer) -> str:
    """A key with the admin role, made as an operator makes one."""
    made = subprocess.run(
        [VIDGATE, "keys", "create", "--user", "schemathesis", "--admin"],
        env=clean_env(
            VIDGATE_DATABASE_URL=apikey_vidgate.env["VIDGATE_DATABASE_URL"],
            VIDGATE_AUTH_MODE="apikey",
        ),
        cwd=apikey_vidgate.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = KEY.search(made.stdout)
    assert found is not None, made.stdout
    return found[1]


def document(mode: str) -> dict[str, Any]:
    settings = Settings(auth_mode=mode)  # type: ignore[arg-type]
    return create_app(settings, public_url="http://127.0.0.1").openapi()


DOCUMENTS = {mode: document(mode) for mode in MODES}


def conformance_schema(mode: str) -> Any:
    return schemathesis.openapi.from_dict(DOCUMENTS[mode]).exclude(path=sorted(NEVER_ENDING))


def per_operation(document: dict[str, Any]) -> int:
    """Cases per operation with inputs to vary (the others, like /healthz, get a few
    each); a fifth more than needed, as hypothesis may stop short on narrow inputs."""
    varied = sum(
        1
        for path, item in document["paths"].items()
        if path not in NEVER_ENDING
        for operation in item.values()
        if operation.get("parameters") or operation.get("requestBody")
    )
    return -(-(CI_CASES if CI else LOCAL_CASES) * 6 // (5 * varied))


def event_streams(document: dict[str, Any]) -> set[str]:
    return {
        path
        for path, item in document["paths"].items()
        for operation in item.values()
        for answer in operation.get("responses", {}).values()
        if "text/event-stream" in answer.get("content", {})
    }


@pytest.mark.parametrize("mode", MODES)
def test_the_documents_are_the_live_ones(
    mode: str, none_vidgate: VidgateServer, apikey_vidgate: VidgateServer
) -> None:
    server = none_vidgate if mode == "none" else apikey_vidgate
    served = httpx.get(f"{server.url}/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENTS[mode]


def test_the_documents_differ_only_where_auth_does() -> None:
    none, apikey = DOCUMENTS["none"], DOCUMENTS["apikey"]
    assert "securitySchemes" not in none.get("components", {})
    assert set(apikey["components"]["securitySchemes"]) == {
        "HTTPBearer",
        "accessToken",
        "queryToken",
    }
    assert none["paths"].keys() == apikey["paths"].keys()
    for path, item in apikey["paths"].items():
        for method, operation in item.items():
            plain = none["paths"][path][method]
            assert "security" not in plain and "401" not in plain["responses"], (path, method)
            if path in ("/healthz", "/readyz", "/metrics"):
                assert "security" not in operation
            elif path.startswith(("/api/", "/v1/")):
                assert operation["security"][0] == {"HTTPBearer": []}, (path, method)
                assert "401" in operation["responses"], (path, method)


def test_every_check_runs() -> None:
    """Every check schemathesis has (one narrowed as said above), none left behind."""
    assert not [check for check in CHECKS.get_all() if is_check_class(check)]
    assert [c.__name__ for c in EVERY_CHECK] == [
        "accepts_valid_data" if name == "positive_data_acceptance" else name
        for name in CHECKS.get_all_names()
    ]


def test_only_the_stated_streams_are_left_out() -> None:
    for document in DOCUMENTS.values():
        assert event_streams(document) >= NEVER_ENDING
        assert event_streams(document) - NEVER_ENDING <= {"/api/video/tasks/{video_id}/events"}


def run_settings(mode: str) -> Any:
    return settings(
        max_examples=per_operation(DOCUMENTS[mode]),
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )


@conformance_schema("none").parametrize()
@run_settings("none")
def test_none_mode_conforms(case: schemathesis.Case[Any], none_vidgate: VidgateServer) -> None:
    calls["none", case.operation.label] += 1
    case.call_and_validate(base_url=none_vidgate.url, checks=EVERY_CHECK, timeout=10)


APIKEY = conformance_schema("apikey")


# Where the admin key goes. Schemathesis builds some cases at collection time, before the
# server and its key exist, so the provider puts this in and the test swaps the key in.
KEY_PLACE = "Bearer <the admin key>"


@APIKEY.auth()
class AdminKey:
    """The admin key on every generated request, except where schemathesis takes the
    credential away on purpose (a request without it must be refused)."""

    def get(self, case: schemathesis.Case[Any], context: Any) -> str:
        return KEY_PLACE

    def set(self, case: schemathesis.Case[Any], data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


@APIKEY.parametrize()
@run_settings("apikey")
def test_apikey_mode_conforms(
    case: schemathesis.Case[Any], apikey_vidgate: VidgateServer, admin_key: str
) -> None:
    calls["apikey", case.operation.label] += 1
    if case.headers and case.headers.get("Authorization") == KEY_PLACE:
        case.headers["Authorization"] = f"Bearer {admin_key}"
    case.call_and_validate(base_url=apikey_vidgate.url, checks=EVERY_CHECK, timeout=10)


def test_enough_cases_were_generated(
    none_vidgate: VidgateServer, apikey_vidgate: VidgateServer
) -> None:
    if not calls:
        pytest.skip("the generated tests did not run (deselected)")
    wanted = CI_CASES if CI else LOCAL_CASES
    for mode in MODES:
        made = {label: n for (m, label), n in calls.items() if m == mode}
        if made:  # not deselected
            assert sum(made.values()) >= wanted, f"{mode}: {sum(made.values())} requests: {made}"
    for server in (none_vidgate, apikey_vidgate):
        assert "Traceback" not in server.output()
