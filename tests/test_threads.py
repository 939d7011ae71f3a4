"""The cascade's BLAS thread limit holds inside its block only."""
from threadpoolctl import threadpool_info

from matcher.threads import one_blas_thread


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_one_blas_thread_inside_the_block_and_restored_after():
    before = _blas_threads()
    assert before, "numpy's BLAS should be visible"
    with one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before
