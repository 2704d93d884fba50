"""What the OpenAI-compatible face needs of every ``TaskStore`` (the in-memory fake, SQLite,
PostgreSQL): oldest-first pages after a cursor, and tasks marked deleted left out of pages
(their ``metadata.deletedAt`` is read inside a JSON column, which each database does its way)."""

from __future__ import annotations

import dataclasses

from tests.unit.test_store_contract import at, created, postgres_url, store
from vidgate.store.base import DELETED_AT, TaskStore, Write

__all__ = ["postgres_url", "store"]  # the fixtures, for pytest


async def test_pages_oldest_first_after_a_cursor(store: TaskStore) -> None:
    # Two tasks share a created_at: video_id breaks the tie in both orders.
    made = [await created(store, created_at=at(s), updated_at=at(s)) for s in (0, 1, 1, 2, 3)]
    await created(store, user_id="bob")
    oldest_first = sorted(made, key=lambda t: (t.created_at, t.video_id))

    seen, cursor = [], None
    while True:
        page = await store.list_page(
            user_id="alice", status=None, limit=2, cursor=cursor, ascending=True
        )
        seen.extend(t.video_id for t in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [t.video_id for t in oldest_first]

    newest_first = await store.list_page(user_id="alice", status=None, limit=9, cursor=None)
    assert [t.video_id for t in newest_first.items] == seen[::-1]


async def test_deleted_tasks_are_left_out_of_pages(store: TaskStore) -> None:
    kept, gone = await created(store, created_at=at(0)), await created(store, created_at=at(1))
    marked = dataclasses.replace(gone, metadata={**gone.metadata, DELETED_AT: "2030-01-01T00:00Z"})
    assert await store.write(Write(before=gone, after=marked)) is not None

    for ascending in (False, True):
        page = await store.list_page(
            user_id="alice", status=None, limit=5, cursor=None, ascending=ascending
        )
        assert [t.video_id for t in page.items] == [kept.video_id]
    # The row itself stays (quotas count it, support finds it).
    assert (await store.get(gone.video_id)) is not None
