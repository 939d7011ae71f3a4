"""How many threads the BLAS libraries may use while the cascade runs: one.

The cascade's matrix products are small (at most a few hundred rows: descriptor GEMMs of the verification,
whitening, FAISS search of a batch). OpenBLAS splits them over its worker threads, and those threads then
busy-wait for the next call, taking the cores from ONNX Runtime, OpenCV's SIFT and the decoding, which do the real
work (a small FAISS search was many times slower inside a scan than alone). With one BLAS thread during the
cascade, scans run faster with the same results (figures: docs/benchmarks.md).

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
    FAISS's and OpenCV's OpenBLAS: imported here first). Inspecting them is not cheap, so it is done once per
    process; a BLAS loaded later (e.g. SciPy's) keeps its threads, which is harmless: the cascade does not call it."""
    import cv2  # noqa: F401  (loaded here so that their BLAS libraries are in the list)
    import faiss  # noqa: F401
    import numpy  # noqa: F401

    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block, BLAS libraries compute on the calling thread only (cheap to enter and leave)."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
