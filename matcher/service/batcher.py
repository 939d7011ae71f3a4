"""Micro-batching: images of concurrent requests gathered into one CNN batch, behind a bounded queue.

A request hands its decoded images to ``MicroBatcher.submit`` and awaits the returned future. One worker thread
takes the oldest waiting image, then gathers more until ``max_batch_size`` images or ``max_wait_s`` seconds,
matches them in one ``Engine.match`` call and resolves each request's future. The queue holds at most
``max_queue`` images; a request that would overflow it is refused at once (``QueueFull``), so memory stays bounded
under any load.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from PIL import Image

from ..cascade import MatchResult
from ..errors import ImageError
from ..index import IndexVersion
from .engine import Engine


class QueueFull(Exception):
    """The batcher's queue cannot take a request's images now; retry after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"too many images waiting; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class _Request:
    images: list[Image.Image | ImageError]
    future: Future = field(default_factory=Future)
    results: list = field(default_factory=list)  # (position in images, MatchResult, IndexVersion)
    pending: int = 0  # decoded images not matched yet


class MicroBatcher:
    """Gathers the decoded images of concurrent requests into batches for one ``Engine``.

    on_batch : called with the size of each batch matched (for metrics)
    """

    def __init__(self, engine: Engine, *, max_batch_size: int, max_wait_s: float, max_queue: int,
                 on_batch: Callable[[int], None] = lambda size: None):
        self.engine = engine
        self.max_batch_size, self.max_wait_s, self.max_queue = max_batch_size, max_wait_s, max_queue
        self.on_batch = on_batch
        self._waiting: deque[tuple[_Request, int]] = deque()  # (request, position of a decoded image in it)
        self._cond = threading.Condition()
        self._closed = False
        self._seconds_per_image = 0.05  # running estimate, for Retry-After
        self._worker = threading.Thread(target=self._run, name="matcher-batcher", daemon=True)
        self._worker.start()

    @property
    def depth(self) -> int:
        """Images waiting for the engine."""
        return len(self._waiting)

    def submit(self, images: list[Image.Image | ImageError]) -> Future:
        """Queue a request's images; the future's result is [(MatchResult, IndexVersion or None)], one per image,
        in order (an ImageError passes through as a failed result). Raises QueueFull."""
        request = _Request(images)
        decoded = [k for k, im in enumerate(images) if not isinstance(im, ImageError)]
        request.results = [(k, MatchResult.failed(im), None) for k, im in enumerate(images) if isinstance(im, ImageError)]
        request.pending = len(decoded)
        if not decoded:
            request.future.set_result(_ordered(request))
            return request.future
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if len(self._waiting) + len(decoded) > self.max_queue:
                raise QueueFull(max(1, round(self._seconds_per_image * (len(self._waiting) + len(decoded)))))
            self._waiting.extend((request, k) for k in decoded)
            self._cond.notify()
        return request.future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._worker.join(timeout=10)

    def _next_batch(self) -> list[tuple[_Request, int]]:
        """The oldest waiting images, up to max_batch_size, after waiting at most max_wait_s for more."""
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if not self._waiting:
                return []
            deadline = time.monotonic() + self.max_wait_s
            while len(self._waiting) < self.max_batch_size and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            count = min(self.max_batch_size, len(self._waiting))
            return [self._waiting.popleft() for _ in range(count)]

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            started = time.perf_counter()
            try:
                results, version = self.engine.match([request.images[k] for request, k in batch])
            except Exception as exc:  # noqa: BLE001 - the requests of this batch fail; the service goes on
                for request in {id(r): r for r, _ in batch}.values():
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            elapsed = time.perf_counter() - started
            self._seconds_per_image = 0.8 * self._seconds_per_image + 0.2 * elapsed / len(batch)
            self.on_batch(len(batch))
            for (request, k), result in zip(batch, results):
                request.results.append((k, result, version))
                request.pending -= 1
                if request.pending == 0 and not request.future.done():
                    request.future.set_result(_ordered(request))


def _ordered(request: _Request) -> list[tuple[MatchResult, IndexVersion | None]]:
    return [(result, version) for _, result, version in sorted(request.results, key=lambda item: item[0])]
