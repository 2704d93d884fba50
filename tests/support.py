"""Real vidgate and simulator processes on loopback sockets, for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

VIDGATE = str(Path(sys.executable).with_name("vidgate"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()}")


@dataclass
class Proc:
    """A vidgate or simulator process; stop it gently, or kill it like a crash."""

    args: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    ready_url: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.args, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT
            )
        wait_http(self.ready_url, self.process, self.log)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class VidgateServer(Proc):
    url: str = ""

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws"


@dataclass
class SimulatorServer(Proc):
    origin: str = ""

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def stats(self) -> dict[str, object]:
        data: dict[str, object] = httpx.get(f"{self.origin}/_sim/stats", timeout=5).json()
        return data


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    env.update(extra)
    return env


StartVidgate = Callable[..., VidgateServer]


def launch_vidgate(
    workdir: Path,
    *,
    job_seconds: float = 2.0,
    db: Path | None = None,
    database_url: str | None = None,
    role: str = "all",
    **env: str,
) -> VidgateServer:
    """Start ``vidgate serve --role ROLE`` in ``workdir`` on a free port; wait until ready.

    The database is ``database_url`` if given, else the SQLite file ``db`` (default:
    ``vidgate.db`` in ``workdir``).
    """
    port = free_port()
    url = database_url or f"sqlite:///{db or workdir / 'vidgate.db'}"
    server = VidgateServer(
        args=[VIDGATE, "serve", "--role", role, "--host", "127.0.0.1", "--port", str(port)],
        env=clean_env(
            VIDGATE_DATABASE_URL=url,
            VIDGATE_SIM_JOB_SECONDS=str(job_seconds),
            **env,
        ),
        cwd=workdir,
        log=workdir / f"vidgate-{role}-{port}.log",
        ready_url=f"http://127.0.0.1:{port}/readyz",
        url=f"http://127.0.0.1:{port}",
    )
    server.start()
    return server


def launch_simulator(
    workdir: Path, *, job_seconds: float = 3.0, extra: list[str] | None = None
) -> SimulatorServer:
    """Start ``vidgate simulator`` as its own process on a free port; wait until ready."""
    port = free_port()
    server = SimulatorServer(
        args=[
            VIDGATE,
            "simulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--job-seconds",
            str(job_seconds),
            *(extra or []),
        ],
        env=clean_env(),
        cwd=workdir,
        log=workdir / f"simulator-{port}.log",
        ready_url=f"http://127.0.0.1:{port}/_sim/stats",
        origin=f"http://127.0.0.1:{port}",
    )
    return server.start()


WriteConfig = Callable[..., Path]
