"""A webhook receiver for the tests: a real HTTP server on loopback that records every
request and answers as told, per path ("ok", "down", "slow", "gone", "redirect", "drop")."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Receipt:
    path: str
    headers: dict[str, str]
    body: str
    answered: int | None  # the status sent back in time; None: too late, or no answer
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def message(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def verify(self, secret: str) -> dict[str, Any]:
        """Exactly what docs/API.md tells a receiver to do."""
        verified: dict[str, Any] = Webhook(secret).verify(self.body.encode(), self.headers)
        return verified


class Receiver:
    def __init__(self, *, slow_seconds: float = 2.0, delay_seconds: float = 0.0) -> None:
        self.modes: dict[str, str] = {}
        self.default = "ok"
        self.slow_seconds = slow_seconds
        self.delay_seconds = delay_seconds  # before an "ok" answer
        self.receipts: list[Receipt] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                mode = receiver.mode_of(self.path)
                answered: int | None
                if mode == "drop":
                    self.close_connection = True
                    receiver.record(Receipt(self.path, headers, body, None, time.monotonic()))
                    return
                if mode == "slow":
                    time.sleep(receiver.slow_seconds)
                    answered, status = None, 200
                else:
                    if mode == "ok" and receiver.delay_seconds:
                        time.sleep(receiver.delay_seconds)
                    status = {"ok": 200, "down": 503, "gone": 410, "redirect": 302}[mode]
                    answered = status
                receiver.record(Receipt(self.path, headers, body, answered, time.monotonic()))
                self.send_response(status)
                if mode == "redirect":
                    self.send_header("Location", "/redirected")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def mode_of(self, path: str) -> str:
        with self._lock:
            return self.modes.get(path, self.default)

    def record(self, receipt: Receipt) -> None:
        with self._lock:
            self.receipts.append(receipt)

    def on(self, path: str) -> list[Receipt]:
        with self._lock:
            return [r for r in self.receipts if r.path == path]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
