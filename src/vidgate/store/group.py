"""Group commit: the writes of many callers in one transaction, each caller answered only
after that transaction committed.

On SQLite every write of a process already waits its turn for the one writer, and a
transaction of its own costs a BEGIN IMMEDIATE and a COMMIT, each a hop to the driver's
thread. Under load (a burst of creates, an engine writing poll results) the writes that
queue up while one transaction runs are taken together into the next one: no timer, so a
lone write is not delayed, and a busy store commits a batch at a time.

A batch runs its writes in order on one connection, so each sees the ones before it, as it
would have run alone after them (an idempotency key claimed earlier in the batch is found
by a later create with the same key). If any write of a batch raises, the batch is rolled
back and every write in it runs again alone, so one refused create (a quota, a database
error) never fails the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

logger = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[Any]]
Transaction = Callable[[], contextlib.AbstractAsyncContextManager[AsyncConnection]]

MAX_BATCH = 256  # writes per transaction: bounds how long the write lock is held


class GroupCommit:
    """Runs ``work(conn)`` functions in shared write transactions opened by ``transaction``."""

    def __init__(
        self, transaction: Transaction, *, max_batch: int = MAX_BATCH, lanes: int = 1
    ) -> None:
        self._transaction = transaction
        self._max_batch = max_batch
        self._lanes = lanes  # transactions open at once (SQLite: 1, its one writer)
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._runners: set[asyncio.Task[None]] = set()
        self.batches = 0  # transactions committed, for tests and the benchmark
        self.writes = 0

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work``'s result once its transaction has committed (or its exception)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if len(self._runners) < self._lanes:
            runner = asyncio.create_task(self._drain(), name="vidgate-group-commit")
            self._runners.add(runner)
        return await future

    async def close(self) -> None:
        if self._runners:
            await asyncio.wait(list(self._runners))

    async def _drain(self) -> None:
        try:
            await self._take_batches()
        finally:
            # Leaves the set in the same step as it finds the queue empty: a write queued
            # after this starts a runner of its own, never waits for one that has ended.
            runner = asyncio.current_task()
            if runner is not None:
                self._runners.discard(runner)

    async def _take_batches(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            # A caller that gave up before its write started gets nothing written.
            batch = [(work, future) for work, future in batch if not future.done()]
            if not batch:
                continue
            try:
                results = await self._commit([work for work, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception:
                if len(batch) > 1:
                    logger.debug("a batch of %d writes failed; each runs alone", len(batch))
                for work, future in batch:
                    await self._alone(work, future)
            else:
                self.batches += 1
                self.writes += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def _alone(self, work: Work, future: asyncio.Future[Any]) -> None:
        if future.done():
            return
        try:
            (result,) = await self._commit([work])
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            self.batches += 1
            self.writes += 1
            if not future.done():
                future.set_result(result)

    async def _commit(self, works: list[Work]) -> list[Any]:
        async with self._transaction() as conn:
            return [await work(conn) for work in works]
