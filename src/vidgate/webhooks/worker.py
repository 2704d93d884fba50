"""The webhook worker: the dispatcher's and the sender's loops, as asyncio tasks of their
own beside the engine (roles ``all`` and ``worker``). Stopping stops claiming, lets the
attempts in flight finish within a drain time, then cancels the rest: a cancelled attempt
keeps its lease until it runs out, and is then sent again (at least once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from vidgate.store import webhooks as store
from vidgate.store.base import StoreUnavailable
from vidgate.webhooks import egress
from vidgate.webhooks.dispatcher import DEFAULT_OVERLAP_SECONDS, Dispatcher
from vidgate.webhooks.sender import RetryPolicy, Sender

logger = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600.0  # forget old finished deliveries this often, in batches
PURGE_BATCH = 1000


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    allow_private: bool = False
    timeout_seconds: float = 10.0
    poll_seconds: float = 1.0
    pass_seconds: float = 0.2  # least time between two dispatch passes
    max_in_flight: int = 64
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    log_days: float = 30.0  # finished deliveries are kept this long (the delivery log)

    @property
    def lease_seconds(self) -> float:
        # Longer than any attempt can take (the post is cut at timeout_seconds).
        return self.timeout_seconds + 20.0


class WebhookWorker:
    def __init__(self, webhook_store: store.WebhookStore, config: WorkerConfig) -> None:
        self.store = webhook_store
        self.config = config
        self.owner = f"webhooks:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.poster = egress.Poster(
            timeout_seconds=config.timeout_seconds, allow_private=config.allow_private
        )
        self.dispatcher = Dispatcher(webhook_store, overlap_seconds=config.overlap_seconds)
        self.sender = Sender(webhook_store, self.poster, owner=self.owner, policy=config.retry)
        self._dispatch_wake = asyncio.Event()
        self._send_wake = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Task[store.Outcome]] = set()

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="vidgate-webhook-dispatch"),
            asyncio.create_task(self._send_loop(), name="vidgate-webhook-send"),
        ]

    def wake(self) -> None:
        """New events may be there (a bus wake-up): dispatch and send now."""
        self._dispatch_wake.set()
        self._send_wake.set()

    async def on_event(self, _wakeup: object) -> None:
        # New events: the dispatcher looks (and wakes the sender if it made deliveries).
        self._dispatch_wake.set()

    async def stop(self, drain_seconds: float = 10.0) -> None:
        self._stopping = True
        self.wake()
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._in_flight:
            _, pending = await asyncio.wait(list(self._in_flight), timeout=drain_seconds)
            for attempt in pending:
                attempt.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.poster.aclose()

    async def _dispatch_loop(self) -> None:
        purged_at = float("-inf")
        while not self._stopping:
            if time.monotonic() - purged_at >= PURGE_EVERY_SECONDS:
                purged_at = time.monotonic()
                await self._purge()
            self._dispatch_wake.clear()
            try:
                if await self.dispatcher.run_once():
                    self._send_wake.set()
            except StoreUnavailable as exc:
                logger.warning("webhook dispatch: %s", exc)
            except Exception:
                logger.exception("webhook dispatch failed")
            # Wake-ups come with every event: a pass at most every `pass_seconds` reads a
            # burst's events together instead of one query per event.
            await asyncio.sleep(min(self.config.pass_seconds, self.config.poll_seconds))
            await _sleep(self._dispatch_wake, self.config.poll_seconds)

    async def _purge(self) -> None:
        before = datetime.now(UTC) - timedelta(days=self.config.log_days)
        try:
            purged = PURGE_BATCH
            while purged == PURGE_BATCH:  # batches keep each write transaction short
                purged = await self.store.purge_finished(before, limit=PURGE_BATCH)
        except StoreUnavailable as exc:
            logger.warning("webhook log purge: %s", exc)

    async def _send_loop(self) -> None:
        while not self._stopping:
            self._send_wake.clear()
            room = self.config.max_in_flight - len(self._in_flight)
            claimed: list[store.Claimed] = []
            if room > 0 and await self._anything_due():
                now = datetime.now(UTC)
                try:
                    claimed = await self.store.claim(
                        owner=self.owner,
                        now=now,
                        until=now + timedelta(seconds=self.config.lease_seconds),
                        limit=room,
                    )
                except StoreUnavailable as exc:
                    logger.warning("webhook claim: %s", exc)
                except Exception:
                    logger.exception("webhook claim failed")
            for item in claimed:
                attempt = asyncio.create_task(self._attempt(item), name="vidgate-webhook-attempt")
                self._in_flight.add(attempt)
                attempt.add_done_callback(self._in_flight.discard)
            if claimed and len(claimed) == room:
                await asyncio.sleep(0)  # more may be due: look again at once
                continue
            await _sleep(self._send_wake, self.config.poll_seconds)

    async def _anything_due(self) -> bool:
        """A read before the claim's write: an idle sender takes no write lock (on SQLite
        the one writer is the engine's too)."""
        try:
            due = await self.store.next_due()
        except StoreUnavailable as exc:
            logger.warning("webhook claim: %s", exc)
            return False
        return due is not None and due <= datetime.now(UTC)

    async def _attempt(self, claimed: store.Claimed) -> store.Outcome:
        try:
            return await self.sender.send(claimed)
        finally:
            self._send_wake.set()  # a finished delivery may unblock the task's next one


async def _sleep(wake: asyncio.Event, seconds: float) -> None:
    """Until ``wake`` is set or ``seconds`` have passed."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout=seconds)
