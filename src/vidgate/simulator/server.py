"""Running the simulator: in the caller's event loop, in a thread, or in the foreground.

`start` and `running_in_thread` bind the socket themselves, so port 0 works and the handle knows
the real port. The embedded server installs no signal handlers and leaves logging configuration
alone: the process hosting it (vidgate's demo mode, a test run) owns both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import socket
import threading
from collections.abc import Generator, Iterator
from typing import Any

import uvicorn

from vidgate.simulator.app import create_app
from vidgate.simulator.config import SimConfig
from vidgate.simulator.state import SimState

STARTUP_TIMEOUT_SECONDS = 30.0
# Requests still hanging (timeout faults) when stopping are cancelled after this long.
GRACEFUL_SHUTDOWN_SECONDS = 1


# Set in the embedded server's task (and so in every task it starts): its uvicorn logs
# through the same loggers as the hosting process's server, whose start-up lines would
# otherwise be printed twice.
_EMBEDDED = contextvars.ContextVar("vidgate_embedded_simulator", default=False)


class _QuietWhenEmbedded(logging.Filter):
    """Drop the embedded server's own INFO lines (start-up, shutdown); keep its warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not _EMBEDDED.get()


_QUIET = _QuietWhenEmbedded()


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Ctrl-C belongs to the hosting process, which stops us through RunningSimulator.stop.
        yield


class RunningSimulator:
    """Handle on a simulator serving on a real socket."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        config: SimConfig,
        state: SimState,
        server: uvicorn.Server,
        task: asyncio.Task[None],
    ) -> None:
        self.host = host
        self.port = port
        self.config = config
        self.state = state
        self._server = server
        self._task = task
        self._loop = task.get_loop()

    @property
    def origin(self) -> str:
        """e.g. http://127.0.0.1:54321"""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API's base URL, prefix included, e.g. http://127.0.0.1:54321/v1"""
        return self.origin + self.state.config.prefix

    def stats(self) -> dict[str, Any]:
        """The same counters as GET /_sim/stats (read without synchronisation: a snapshot)."""
        return self.state.stats_snapshot()

    async def stop(self) -> None:
        """Stop serving and wait until the server has shut down. Safe to call twice, and from
        another event loop than the one serving (the thread runner's case)."""
        if asyncio.get_running_loop() is not self._loop:
            future = asyncio.run_coroutine_threadsafe(self.stop(), self._loop)
            await asyncio.wrap_future(future)
            return
        self._server.should_exit = True
        await self._task


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # An explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def start(config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> RunningSimulator:
    """Serve the simulator from the current event loop; returns once it accepts connections."""
    sock = _bind(host, port)
    actual_port = int(sock.getsockname()[1])
    app = create_app(config)
    server = _EmbeddedServer(
        uvicorn.Config(
            app,
            log_config=None,
            log_level=None,
            access_log=False,
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )
    uvicorn_log = logging.getLogger("uvicorn.error")
    if _QUIET not in uvicorn_log.filters:
        uvicorn_log.addFilter(_QUIET)
    embedded = contextvars.copy_context()
    embedded.run(_EMBEDDED.set, True)
    task = asyncio.create_task(
        server.serve(sockets=[sock]), name="vidgate-simulator", context=embedded
    )
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()  # re-raises whatever stopped it
                    raise RuntimeError("the simulator stopped before it started")
                await asyncio.sleep(0.005)
    except BaseException:
        server.should_exit = True
        sock.close()
        raise
    return RunningSimulator(
        host=host,
        port=actual_port,
        config=config,
        state=app.state.sim,
        server=server,
        task=task,
    )


@contextlib.contextmanager
def running_in_thread(
    config: SimConfig, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningSimulator]:
    """For synchronous code: the simulator runs in a daemon thread with its own event loop."""
    ready: concurrent.futures.Future[tuple[RunningSimulator, asyncio.Event]] = (
        concurrent.futures.Future()
    )

    async def serve() -> None:
        try:
            simulator = await start(config, host, port)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        stop_requested = asyncio.Event()
        ready.set_result((simulator, stop_requested))
        await stop_requested.wait()
        await simulator.stop()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.name = "vidgate-simulator"
    thread.start()
    simulator, stop_requested = ready.result(timeout=STARTUP_TIMEOUT_SECONDS)
    try:
        yield simulator
    finally:
        simulator._loop.call_soon_threadsafe(stop_requested.set)
        thread.join(timeout=STARTUP_TIMEOUT_SECONDS)


def run(config: SimConfig, host: str, port: int) -> None:
    """Serve in the foreground until Ctrl-C, with uvicorn logging to the console."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")
