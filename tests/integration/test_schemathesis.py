"""Property-based conformance: generated requests against a live vidgate's /openapi.json.

The schema is vidgate's own, built at collection time (schemathesis' fixture-loaded
schemas do not run under pytest 9), and a test checks it is exactly what the live server
serves at /openapi.json. Every operation gets generated requests, valid and invalid, over
a real socket. Whatever comes back must not be a 5xx and must be documented: its status code,
its content type and its body's schema. In CI (``CI`` set) at least ``CI_CASES`` requests
are made in total; locally fewer, to keep the loop quick.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import VidgateServer, launch_vidgate
from vidgate.api.app import create_app
from vidgate.config import Settings

CI = bool(os.environ.get("CI"))
CI_CASES = 1000
LOCAL_CASES = 300

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Requests made, per operation label; read by the last test of the module. One process's count:
# under pytest-xdist the suite is spread by file (``--dist loadfile``), so this whole module
# runs on one worker, in order.
calls: Counter[str] = Counter()


@pytest.fixture(scope="module")
def live_vidgate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    server = launch_vidgate(
        tmp_path_factory.mktemp("schemathesis"), job_seconds=1.0, VIDGATE_AUTH_MODE="none"
    )
    yield server
    server.stop()


OPENAPI = create_app(Settings(auth_mode="none"), public_url="http://127.0.0.1").openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)

# Operations with inputs to vary share the budget (the others, like /healthz, get a few
# cases each); a fifth more than needed, as hypothesis may stop short on narrow inputs.
VARIED = sum(
    1
    for path in OPENAPI["paths"].values()
    for operation in path.values()
    if operation.get("parameters") or operation.get("requestBody")
)
PER_OPERATION = -(-(CI_CASES if CI else LOCAL_CASES) * 6 // (5 * VARIED))


def test_the_schema_is_the_live_one(live_vidgate: VidgateServer) -> None:
    served = httpx.get(f"{live_vidgate.url}/openapi.json")
    assert served.status_code == 200
    assert served.json() == OPENAPI


@schema.parametrize()
@settings(
    max_examples=PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_response_is_documented(
    case: schemathesis.Case[Any], live_vidgate: VidgateServer
) -> None:
    calls[case.operation.label] += 1
    case.call_and_validate(base_url=live_vidgate.url, checks=CHECKS, timeout=10)


def test_enough_cases_were_generated(live_vidgate: VidgateServer) -> None:
    if not calls:
        pytest.skip("the generated tests did not run (deselected)")
    wanted = CI_CASES if CI else LOCAL_CASES
    total = sum(calls.values())
    assert total >= wanted, f"{total} requests: {dict(calls)}"
    assert "Traceback" not in live_vidgate.output()
