"""The media a completed job serves: a short MP4 clip drawn from the prompt, a WebP thumbnail and
a JPEG spritesheet, rendered with PyAV in a worker thread and cached.

The picture is derived from a hash of the prompt (a looping gradient and a few moving discs), so
the same prompt always gives the same bytes and two prompts are easy to tell apart. The clip is
short and small (3 s at 15 fps, 320 px wide, the requested size's aspect ratio) so rendering
takes a fraction of a second; H.264 with the moov atom up front (`+faststart`) so browsers can
start playing before the whole file arrives.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

FPS = 15
CLIP_SECONDS = 3
WIDTH = 320
SPRITE_COLUMNS = 4
SPRITE_ROWS = 2
CONTENT_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}

# Encoders in order of preference; all of them play in Chromium from an MP4 container.
_VIDEO_ENCODERS: tuple[tuple[str, dict[str, str]], ...] = (
    ("libx264", {"preset": "ultrafast", "crf": "28"}),
    ("libopenh264", {}),
    ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
)

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class MediaSpec:
    """Everything the rendered media depend on, hence the cache key."""

    prompt: str
    size: str

    def dimensions(self) -> tuple[int, int]:
        """320 px wide, height from the requested aspect ratio, both even (yuv420p needs it)."""
        width_text, _, height_text = self.size.partition("x")
        ratio = int(height_text) / int(width_text)
        return WIDTH, max(2, round(WIDTH * ratio / 2) * 2)


@dataclass(frozen=True, kw_only=True, slots=True)
class Media:
    video: bytes
    thumbnail: bytes
    spritesheet: bytes

    def variant(self, name: str) -> bytes:
        return {"video": self.video, "thumbnail": self.thumbnail, "spritesheet": self.spritesheet}[
            name
        ]


@functools.cache
def video_encoder() -> tuple[str, dict[str, str]]:
    """The first encoder of our list that this PyAV build ships."""
    for name, options in _VIDEO_ENCODERS:
        try:
            av.Codec(name, "w")
        except Exception:  # PyAV raises its own error types for a missing codec
            continue
        return name, options
    raise RuntimeError("PyAV has no H.264 or VP9 encoder; cannot render simulator media")


class _Scene:
    """A looping animation: frame(t) for t in [0, 1) wraps around seamlessly."""

    def __init__(self, prompt: str, width: int, height: int) -> None:
        digest = hashlib.sha256(prompt.encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        self.width, self.height = width, height
        top, bottom = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
        # Symmetric gradient (top -> bottom -> top) so scrolling it never shows a seam.
        blend = (1 - np.cos(np.linspace(0, 2 * math.pi, height, endpoint=False))) / 2
        column = top * (1 - blend[:, None]) + bottom * blend[:, None]
        gradient = np.repeat(column[:, None, :], width, axis=1).astype(np.uint8)
        self.background: Image = np.concatenate([gradient, gradient])
        self.discs = [
            (
                rng.integers(64, 256, size=3).astype(np.uint8),
                float(rng.uniform(0.06, 0.14)) * min(width, height) + 4,
                int(rng.integers(1, 3)),
                int(rng.integers(1, 3)),
                float(rng.uniform(0, 1)),
                float(rng.uniform(0, 1)),
            )
            for _ in range(int(rng.integers(3, 6)))
        ]

    def frame(self, t: float) -> Image:
        width, height = self.width, self.height
        shift = int(t * height)
        image = self.background[shift : shift + height].copy()
        for color, radius, fx, fy, px, py in self.discs:
            cx = width * (0.5 + 0.35 * math.sin(2 * math.pi * (fx * t + px)))
            cy = height * (0.5 + 0.35 * math.sin(2 * math.pi * (fy * t + py)))
            self._disc(image, cx, cy, radius, color)
        # A progress bar along the bottom edge shows where in the loop a frame sits.
        image[-4:, : int(t * width)] = 255
        return image

    @staticmethod
    def _disc(image: Image, cx: float, cy: float, radius: float, color: Image) -> None:
        height, width = image.shape[:2]
        top, bottom = max(0, int(cy - radius)), min(height, int(cy + radius) + 1)
        left, right = max(0, int(cx - radius)), min(width, int(cx + radius) + 1)
        if top >= bottom or left >= right:
            return
        ys, xs = np.ogrid[top:bottom, left:right]
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
        image[top:bottom, left:right][inside] = color


def render(spec: MediaSpec) -> Media:
    """Render all three variants (CPU-bound: call it in a worker thread)."""
    width, height = spec.dimensions()
    scene = _Scene(spec.prompt, width, height)
    count = FPS * CLIP_SECONDS
    tiles_wanted = SPRITE_COLUMNS * SPRITE_ROWS
    sprite_at = {index * count // tiles_wanted for index in range(tiles_wanted)}
    tiles: list[Image] = []
    thumbnail: Image | None = None
    encoder, options = video_encoder()
    with tempfile.TemporaryDirectory(prefix="vidgate-sim-") as tmp:
        # The mp4 muxer rewrites the file to move the moov atom up front, which needs a real
        # file rather than a BytesIO.
        path = Path(tmp) / "clip.mp4"
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream: Any = out.add_stream(encoder, rate=FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = dict(options)
            for index in range(count):
                image = scene.frame(index / count)
                if index in sprite_at:
                    tiles.append(image[::2, ::2])
                if index == count // 2:
                    thumbnail = image
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        video = path.read_bytes()
    assert thumbnail is not None
    rows = [
        np.concatenate(tiles[r * SPRITE_COLUMNS : (r + 1) * SPRITE_COLUMNS], axis=1)
        for r in range(SPRITE_ROWS)
    ]
    return Media(
        video=video,
        thumbnail=_encode_still(thumbnail, "libwebp", "yuv420p"),
        spritesheet=_encode_still(np.concatenate(rows, axis=0), "mjpeg", "yuvj420p"),
    )


def _encode_still(image: Image, codec: str, pix_fmt: str) -> bytes:
    """One image through an image encoder; libwebp and mjpeg emit complete files per packet."""
    height, width = image.shape[:2]
    context: Any = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = width, height, pix_fmt
    context.time_base = Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    packets = [*context.encode(frame.reformat(format=pix_fmt)), *context.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


class MediaCache:
    """Renders each spec once, off the event loop; keeps the most recent `capacity` results.

    Concurrent requests for the same spec share one render. Evicted media are simply rendered
    again on demand, which gives the same bytes.
    """

    def __init__(self, capacity: int = 128) -> None:
        self._capacity = capacity
        self._done: OrderedDict[MediaSpec, Media] = OrderedDict()
        self._pending: dict[MediaSpec, asyncio.Task[Media]] = {}

    async def get(self, spec: MediaSpec) -> Media:
        media = self._done.get(spec)
        if media is not None:
            self._done.move_to_end(spec)
            return media
        task = self._pending.get(spec)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(render, spec))
            self._pending[spec] = task
            task.add_done_callback(functools.partial(self._finished, spec))
        # shield: a client hanging up must not cancel a render others may be waiting for.
        return await asyncio.shield(task)

    def _finished(self, spec: MediaSpec, task: asyncio.Task[Media]) -> None:
        self._pending.pop(spec, None)
        if task.cancelled() or task.exception() is not None:
            return
        self._done[spec] = task.result()
        while len(self._done) > self._capacity:
            self._done.popitem(last=False)

    async def aclose(self) -> None:
        """Wait for renders in flight so none is left running when the loop closes."""
        if self._pending:
            await asyncio.gather(*self._pending.values(), return_exceptions=True)
