"""How many threads the maths libraries (BLAS, and FAISS's OpenMP) may use while the cascade runs: one.

The cascade's matrix products and searches are small (at most a few hundred rows: descriptor GEMMs of the
verification, whitening, FAISS search of a batch). OpenBLAS and OpenMP split them over their worker threads, and
those threads then busy-wait for the next call, taking the cores from ONNX Runtime, OpenCV's SIFT and the
decoding, which do the real work; or they wait for a core those hold (a FAISS search of 3 vectors among 222 took
13 us alone and 1.4 ms in a re-scan whose SIFT extraction ran beside it). With one thread during the cascade,
scans run faster with the same results (figures: docs/benchmarks.md).

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
    FAISS's and OpenCV's OpenBLAS, FAISS's OpenMP: imported here first). Inspecting them is not cheap, so it is
    done once per process; a BLAS loaded later (e.g. SciPy's) keeps its threads, which is harmless: the cascade does
    not call it."""
    import cv2  # noqa: F401  (loaded here so that their BLAS libraries are in the list)
    import faiss  # noqa: F401
    import numpy  # noqa: F401

    return ThreadpoolController()


@contextlib.contextmanager
def one_maths_thread() -> Iterator[None]:
    """Within the block, BLAS libraries and OpenMP compute on the calling thread only (cheap to enter and
    leave)."""
    with _controller().limit(limits=1):
        yield
