"""The cascade's thread limit on BLAS and OpenMP (FAISS) holds inside its block only."""
import cv2  # noqa: F401  (the libraries the cascade has loaded by the time it limits their threads)
import faiss  # noqa: F401
from threadpoolctl import threadpool_info

from matcher.cascade.threads import one_maths_thread

CASCADE_LIBRARIES = ("numpy", "faiss", "opencv")  # whose BLAS the cascade calls (folders of their .so files)


def _blas_threads() -> dict[str, int]:
    return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()
            if pool["user_api"] in ("blas", "openmp") and any(name in pool["filepath"] for name in CASCADE_LIBRARIES)}


def test_one_maths_thread_inside_the_block_and_restored_after():
    before = _blas_threads()
    assert any("numpy" in path for path in before), "numpy's BLAS should be visible"
    assert any("faiss" in path and "gomp" in path for path in before), "FAISS's OpenMP should be visible"
    with one_maths_thread():
        assert set(_blas_threads().values()) == {1}
    assert _blas_threads() == before
