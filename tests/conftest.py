"""Shared fixtures: real vidgate and simulator processes on loopback sockets."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import Kind, fresh_database
from tests.support import (
    SimulatorServer,
    StartVidgate,
    VidgateServer,
    WriteConfig,
    launch_simulator,
    launch_vidgate,
)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """``addopts`` in pyproject.toml spreads the suite over pytest-xdist workers. With xdist
    switched off (``-p no:xdist``) or not installed, its options there are still accepted,
    and ignored: the tests run in this one process."""
    if pluginmanager.has_plugin("xdist"):
        return
    group = parser.getgroup("xdist", "pytest-xdist is off: these are accepted and ignored")
    group.addoption("--numprocesses", dest="numprocesses", default=None)
    group.addoption("--dist", dest="dist", default="no")
    group.addoption("--no-loadscope-reorder", action="store_false", dest="loadscopereorder")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test its own node id.

    Schemathesis 4 under pytest 9.2 gives the tests it generates (one per API operation) one
    id between them. pytest-xdist's ``--dist loadfile`` keys tests by id, so it would run
    only the first of them and drop the others without a word; a duplicate left over is an
    error instead.
    """
    count = Counter(item.nodeid for item in items)
    for item in items:
        if count[item.nodeid] > 1 and item.parent is not None:
            nodeid = f"{item.parent.nodeid}::{item.name}"
            if hasattr(item, "_id"):  # pytest >= 9.2 keeps a structured NodeId
                item._id = type(item._id).parse(nodeid)
            else:
                item._nodeid = nodeid
    left = sorted(nodeid for nodeid, n in Counter(i.nodeid for i in items).items() if n > 1)
    if left and hasattr(config, "workerinput"):  # on a pytest-xdist worker
        raise pytest.UsageError(f"pytest-xdist would run only one test of each: {left}")


@pytest.fixture
def database_kind() -> Kind:
    """The database a test's vidgate processes use. A module runs on both with
    ``database_kind = pytest.fixture(params=DATABASES)(lambda request: request.param)``."""
    return "sqlite"


@pytest.fixture
def database_url(database_kind: Kind, tmp_path: Path) -> Iterator[str]:
    """A fresh database of ``database_kind`` for this test alone."""
    with fresh_database(database_kind, tmp_path) as url:
        yield url


@pytest.fixture
def start_vidgate(tmp_path: Path, database_url: str) -> Iterator[StartVidgate]:
    """Start ``vidgate serve`` processes, all on the test's own database (so a test can
    stop or kill one and start another on the same data)."""
    started: list[VidgateServer] = []

    def start(**options: Any) -> VidgateServer:
        if "db" not in options:  # a test naming its own SQLite file keeps it
            options.setdefault("database_url", database_url)
        server = launch_vidgate(tmp_path, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_vidgate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    """One demo-mode server for a whole module of tests that do not disturb each other."""
    server = launch_vidgate(tmp_path_factory.mktemp("vidgate"))
    yield server
    server.stop()


@pytest.fixture
def vidgate_server(start_vidgate: StartVidgate) -> VidgateServer:
    """A real ``vidgate serve`` in demo mode (built-in simulator, 2 s jobs), fresh SQLite."""
    return start_vidgate()


@pytest.fixture
def simulator_process(tmp_path: Path) -> Iterator[Callable[..., SimulatorServer]]:
    """Start ``vidgate simulator`` as its own process (its counters outlive vidgate restarts)."""
    started: list[SimulatorServer] = []

    def start(*, job_seconds: float = 3.0, extra: list[str] | None = None) -> SimulatorServer:
        server = launch_simulator(tmp_path, job_seconds=job_seconds, extra=extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def provider_config(tmp_path: Path) -> WriteConfig:
    """Write a VIDGATE_CONFIG file with one provider named ``main``; returns its path."""

    def toml(value: object) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, dict):
            return "{ " + ", ".join(f'"{k}" = {toml(v)}' for k, v in value.items()) + " }"
        return json.dumps(value)

    def write(base_url: str, **options: object) -> Path:
        lines = ["[[providers]]", 'name = "main"', f'base_url = "{base_url}"']
        lines += [f"{key} = {toml(value)}" for key, value in options.items()]
        path = tmp_path / "vidgate.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
