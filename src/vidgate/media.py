"""Finished videos kept by vidgate itself (providers with ``content = "mirror"``).

An upstream keeps a video for a while (about an hour after completion at OpenAI); a
mirrored one stays playable from vidgate's own ``/stream`` route after that, and after
an upstream (or the demo mode's in-process simulator) forgot it. One file per task,
``<media_dir>/<videoId>.mp4``, written under a temporary name and renamed into place, so
a reader never sees half a video. Every process that serves ``/stream`` must see the
directory the workers write to (the same machine, or a shared volume).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from vidgate.domain import ids


class TooLarge(Exception):
    """The video is larger than the store accepts."""


class MediaStore:
    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path_for(self, video_id: str) -> Path:
        if not ids.is_video_id(video_id):  # never a path from anything but our own ids
            raise ValueError(f"not a videoId: {video_id!r}")
        return self.root / f"{video_id}.mp4"

    def find(self, video_id: str) -> Path | None:
        """The mirrored file of ``video_id``, if there is one."""
        path = self.path_for(video_id)
        return path if path.is_file() else None

    async def save(self, video_id: str, chunks: AsyncIterator[bytes]) -> int:
        """Write the video from ``chunks``; its size. ``TooLarge`` past ``max_bytes``
        (nothing is kept then); ``OSError`` if the disk refuses."""
        target = self.path_for(video_id)
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        partial = self.root / f".{video_id}.{secrets.token_hex(4)}.partial"
        size = 0
        try:
            with await asyncio.to_thread(partial.open, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TooLarge(f"the video is over {self.max_bytes} bytes")
                    await asyncio.to_thread(out.write, chunk)
                await asyncio.to_thread(os.fsync, out.fileno())
            await asyncio.to_thread(os.replace, partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        return size
