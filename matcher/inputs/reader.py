"""Read stage of a scan: listing files -> (sha256, decoded RGB image), in worker processes ahead of the model.

While the main process runs the model on batch n, workers read, hash and decode batches n+1 .. n+ahead; results
come back in input order and memory stays bounded by ahead + 1 batches. ``workers=0`` decodes in this process, in
a thread one batch ahead of the consumer (PIL releases the GIL while it decodes, so decoding overlaps the model and
the cascade's single-threaded Python; figures: docs/benchmarks.md).
Workers come from a forkserver (spawn where there is none), never from forking the main process, whose ONNX
Runtime / torch threads may hold locks a forked child would wait on forever. The forkserver imports ``matcher``
once, which is slow and large (it pulls in torch); workers then fork from it quickly. So with ``workers=None`` the
pool starts only once waiting for the reading thread takes >= WORTH_IT (10%) of the consumer's time, and until it
answers batches are decoded here. Like any multiprocessing code, a script that scans needs
``if __name__ == "__main__":``. A listing that kills its worker (segfault, out of memory) breaks the pool: it is
recreated, results already back are kept, the rest of the batch is decoded one at a time to find the culprit (an
``unreadable`` row), later batches are resubmitted.
Each decoding process remembers the digests it decoded: a repeat comes back as ``image=None``, and the scan
reuses the earlier listing's match.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Union

from PIL import Image

from ..errors import ImageError
from .files import one_line, read_image_bytes
from .images import bytes_sha256, load_image
from .listings import Listing

log = logging.getLogger(__name__)

# Decoded listings keep their shorter side >= 512 px: JPEGs decode at 1/2, 1/4 or 1/8 scale (DCT scaling, nearly
# free), other formats are box-reduced by an integer factor. 512 because region search embeds half-size windows
# at 224 px and SIFT verification works on a copy whose longer side is 320 px (CascadeSettings.sift_long_side):
# neither upsamples a reduced image, so matching keeps the detail of a full decode, while a large phone photo
# costs a small fraction of its pixels to decode, hold and send between processes (figures: docs/benchmarks.md).
DRAFT_SIDE = 512
MAX_WORKERS = 8  # decoding costs a fraction of the model: more processes would only add memory
SEEN_LIMIT = 4096  # sha256 digests each decoding process remembers
WORTH_IT = 0.10  # workers=None: start the pool once waiting for in-process decoding takes this share of the
# consumer's time

Payload = Union[Image.Image, ImageError, None]


class Decoded(NamedTuple):
    """``digest``: sha256, None if unreadable. ``image``: RGB, the ImageError, or None (repeat of earlier bytes)."""
    listing: Listing
    digest: Optional[str]
    image: Payload


def default_workers() -> int:
    """Decode processes when not told: the CPUs this process may use, at most MAX_WORKERS."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_WORKERS))


def decode_for_matching(data: bytes, name: str) -> Image.Image:
    """Encoded bytes -> RGB image, reduced by an integer factor while its shorter side stays >= DRAFT_SIDE."""
    image = load_image(data, name=name, draft_side=DRAFT_SIDE)
    factor = min(image.size) // DRAFT_SIDE
    return image.reduce(factor) if factor >= 2 else image


def read_listing(path: str | os.PathLike, name: str, seen: OrderedDict | None = None) -> tuple[str | None, Payload]:
    """Read, hash, decode one file -> (sha256 or None, image or ImageError); a digest in ``seen`` -> (sha256, None)."""
    try:
        data = read_image_bytes(path, name=name)
    except ImageError as exc:
        return None, exc
    except Exception as exc:  # noqa: BLE001 - a bad path costs one row, not the scan
        return None, ImageError("unreadable", f"{one_line(name)}: cannot read file ({type(exc).__name__}: {exc})")
    digest = bytes_sha256(data)
    if seen is not None and digest in seen:
        seen.move_to_end(digest)
        return digest, None
    try:
        image = decode_for_matching(data, name)
    except ImageError as exc:
        return digest, exc
    except Exception as exc:  # noqa: BLE001 - a decoder bug costs one row, not the scan
        return digest, ImageError("unreadable",
                                  f"{one_line(name)}: cannot decode image ({type(exc).__name__}: {exc})")
    if seen is not None:
        seen[digest] = None
        if len(seen) > SEEN_LIMIT:
            seen.popitem(last=False)
    return digest, image


_SEEN: OrderedDict = OrderedDict()  # digests decoded by this worker process


def _init_worker() -> None:
    """Ctrl-C is the main process's to handle; exit when the main process dies (even by kill -9)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(0)), daemon=True).start()


def _worker_read(path: str, name: str) -> tuple[str | None, tuple | None]:
    """read_listing in a worker. Pixels travel as raw RGB bytes (cheaper than a pickled PIL image)."""
    digest, image = read_listing(path, name, _SEEN)
    if isinstance(image, Image.Image):
        return digest, ("rgb", image.size, image.tobytes())
    return digest, None if image is None else ("error", image.kind, str(image))


def _unpack(payload: tuple | None) -> Payload:
    if payload is None or payload[0] == "error":
        return payload and ImageError(payload[1], payload[2])
    return Image.frombytes("RGB", payload[1], payload[2])


def _lost(future: Future | None) -> bool:
    """True when the listing still has to be submitted: never was, or its pool died first."""
    return (future is None or future.cancelled()
            or (future.done() and isinstance(future.exception(), BrokenProcessPool)))


class DecodePool(contextlib.AbstractContextManager):
    """Decodes batches of listings ``ahead`` of their consumer; a context manager. ``workers``: decode processes
    (None: ``default_workers()`` once worth it, see WORTH_IT; 0: decode in the calling process)."""

    def __init__(self, workers: int | None = None, *, ahead: int = 2):
        self.workers = default_workers() if workers is None else max(0, int(workers))
        self.eager = workers is not None  # start the pool at the second batch, worth it or not
        self._decode_s = self._consume_s = 0.0  # waiting for decoding here / consuming, while no pool
        if self.workers and getattr(multiprocessing.current_process(), "_inheriting", False):
            raise RuntimeError("a decode worker is re-running the main script, which starts a scan: guard the "
                               "script's entry point with `if __name__ == '__main__':` (or pass workers=0)")
        self.ahead = max(1, ahead)
        self.crashes = 0  # listings that killed their worker
        self._seen: OrderedDict = OrderedDict()  # digests decoded in this process (by its reading thread only)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="matcher-read")  # decodes here, one batch ahead
        self.ready = threading.Event()  # the pool answered (or could not start: then workers == 0)
        self._executor: ProcessPoolExecutor | None = None
        self._starter: threading.Thread | None = None  # starts the pool

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._starter is not None:
            self._starter.join()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._thread.shutdown(wait=True, cancel_futures=True)

    def read(self, batches: Iterable[list[Listing]], wanted: Callable[[Listing], bool] = lambda item: True
             ) -> Iterator[tuple[list[Listing], list[Decoded]]]:
        """Yield (batch, its ``wanted`` listings decoded) in input order; an error raised by ``batches`` (a bad
        manifest line) is raised after the batches before it."""
        source, error, first = iter(batches), None, True
        window: deque[tuple[list[Listing], list[list]]] = deque()  # (batch, [[listing, future, its pool]])
        while True:
            limit = self.ahead if self.workers and self.ready.is_set() else 1  # 1: peek at the next batch
            while source is not None and len(window) <= limit:
                try:
                    batch = next(source)
                    window.append((batch, [[item, None, None] for item in batch if wanted(item)]))
                except StopIteration:
                    source = None
                except Exception as exc:  # noqa: BLE001 - raised below, after the batches before it
                    source, error = None, exc
            if self.workers and self._starter is None and len(window) > 1 and (
                    self.eager or self._decode_s >= WORTH_IT * self._consume_s > 0):
                self._starter = threading.Thread(target=self._start_pool, name="matcher-decode", daemon=True)
                self._starter.start()  # without waiting: until the pool answers, batches are decoded here
            pool_up = self.workers and self.ready.is_set()
            for _, slots in window:
                for slot in slots:
                    if pool_up and _lost(slot[1]):
                        slot[1:] = self._submit(slot[0]), self._executor
                    elif slot[1] is None:  # no pool (yet): this process's reading thread decodes it
                        slot[1] = self._read_here(slot[0])
            if not window:
                if error is not None:
                    raise error
                return
            batch, slots = window.popleft()
            began = time.perf_counter()
            decoded = [self._collect(*slot) for slot in slots]
            decoded_at = time.perf_counter()
            yield batch, decoded
            if self._starter is None and not first:  # nothing could be decoded ahead of the first batch
                self._decode_s += decoded_at - began
                self._consume_s += time.perf_counter() - decoded_at
            first = False

    def _start_pool(self) -> None:
        """Start the pool, or replace a broken one; if none can start, decode in this process from now on."""
        if self._executor is not None:  # broken: all its futures are done now
            # A surviving worker can block forever writing its result to the dead pool's pipe, and shutdown
            # would wait for it (CPython gh-94777): stop the survivors first; their listings are redone.
            for process in list((getattr(self._executor, "_processes", None) or {}).values()):
                process.terminate()
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        try:
            self._executor = self._new_executor()
        except Exception as exc:  # noqa: BLE001 - no processes here (sandbox, unguarded script...)
            log.warning("decode workers unavailable (%s); decoding in the main process", exc)
            self.workers = 0
        self.ready.set()

    def _new_executor(self) -> ProcessPoolExecutor:
        """A pool that answered a ping (so a pool that cannot start or import the reader is not blamed on a listing)."""
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload([__name__])  # no effect once the forkserver runs
        executor = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker)
        try:
            executor.submit(_worker_read, "", "<ping>").result()  # (None, not_found)
        except BaseException:
            executor.shutdown(wait=True, cancel_futures=True)
            raise
        return executor

    def _submit(self, item: Listing) -> Future:
        try:
            return self._executor.submit(_worker_read, os.fspath(item.path), item.listing)
        except (BrokenProcessPool, OSError) as exc:  # broke since the last batch: handled at this listing's turn
            # (a pool whose worker just died can also refuse with "handle is closed" from its pipe)
            future: Future = Future()
            future.set_exception(exc if isinstance(exc, BrokenProcessPool) else BrokenProcessPool(str(exc)))
            return future

    def _read_here(self, item: Listing) -> Future:
        """read_listing in this process's reading thread; the future's result is (digest, image or error)."""
        return self._thread.submit(read_listing, item.path, item.listing, self._seen)

    def _collect(self, item: Listing, future: Future | None, pool: ProcessPoolExecutor | None) -> Decoded:
        if future is None or (pool is not None and self._executor is None):  # its pool died and none replaced it
            future, pool = self._read_here(item), None
        if pool is None:  # read by this process's reading thread
            return Decoded(item, *future.result())
        try:
            digest, payload = future.result()
            return Decoded(item, digest, _unpack(payload))
        except (BrokenProcessPool, CancelledError):  # a worker died, maybe on another listing
            if pool is self._executor:
                self._start_pool()  # the first loss of this pool: the rest of the batch goes one by one
            return Decoded(item, *self._alone(item))
        except Exception as exc:  # noqa: BLE001 - e.g. MemoryError in the worker: this listing's row
            return Decoded(item, None, ImageError("unreadable",
                                                  f"{one_line(item.listing)}: cannot decode image ({exc!r})"))

    def _alone(self, item: Listing) -> tuple[str | None, Payload]:
        """Decode one listing with nothing else in flight: if the worker dies now, this listing killed it."""
        if self._executor is None:
            return read_listing(item.path, item.listing)
        try:
            digest, payload = self._submit(item).result()
            return digest, _unpack(payload)
        except (BrokenProcessPool, CancelledError):
            self.crashes += 1
            log.warning("%s: decoding it crashed a worker process", item.listing)
            self._start_pool()
            return None, ImageError("unreadable", f"{one_line(item.listing)}: unreadable image (decoding it "
                                                  "crashed the decoder process)")
