"""In-memory fakes of vidgate's ports, for unit tests of the service and the engine.

``MemoryTaskStore`` behaves like ``SqlTaskStore`` (one contract suite,
tests/unit/test_store_contract.py, runs against both); ``FakeProvider`` is an upstream a
test scripts step by step. The event bus needs no fake: ``InProcessBus`` is in memory.

    store = MemoryTaskStore()
    provider = FakeProvider(models={"sora-2": "sora-2"})
    provider.fail_next("create", RateLimited("slow down", retry_after=2))
    ...
    provider.advance(external_id, status="in_progress", progress=40)
    provider.complete(external_id, url="https://cdn.example/v.mp4")
"""

from __future__ import annotations

from vidgate.testing.provider import Call, FakeJob, FakeProvider, Hang
from vidgate.testing.store import MemoryTaskStore

__all__ = [
    "Call",
    "FakeJob",
    "FakeProvider",
    "Hang",
    "MemoryTaskStore",
]
