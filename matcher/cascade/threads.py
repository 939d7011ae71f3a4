"""How many threads the BLAS libraries may use while the cascade runs: one.

The cascade's matrix products are small (at most a few hundred rows: descriptor GEMMs of the verification,
whitening, FAISS search of a batch). OpenBLAS splits them over its worker threads, and those threads then
busy-wait for the next call, taking the cores from ONNX Runtime, OpenCV's SIFT and the decoding, which do the real
work (a 32-row FAISS search took 16 ms inside a scan, 0.35 ms alone). With one BLAS thread during the cascade, a
2-core scan of devbench's queries ran at 10.3 listings/s instead of 8.6-9.2, and marketplace-like traffic ~7%
faster in an interleaved A/B, with the same results (scores equal to 1e-6).

The limit is applied for the duration of a ``with`` block and restored afterwards, so code around the matcher
(for example a whitening fit, one large product) keeps every thread.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Iterator

from threadpoolctl import ThreadpoolController


@functools.lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    """The thread pools of the libraries loaded at the first call, which include those the cascade calls (numpy's,
    FAISS's and OpenCV's OpenBLAS: imported here first). Inspecting them costs ~8 ms, so it is done once per
    process; a BLAS loaded later (e.g. SciPy's) keeps its threads, which is harmless: the cascade does not call it."""
    import cv2  # noqa: F401  (loaded here so that their BLAS libraries are in the list)
    import faiss  # noqa: F401
    import numpy  # noqa: F401

    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block, BLAS libraries compute on the calling thread only (~0.05 ms to enter and leave)."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
