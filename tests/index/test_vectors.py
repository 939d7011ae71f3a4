"""The FAISS vector index against brute force, on tiny seeded synthetic vectors."""

import numpy as np
import pytest

from matcher.index.vectors import VectorIndex


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(queries, vectors, ids, k):
    sims = queries @ vectors.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), ids[order]


def filled_index(rng, n=40, d=16):
    vectors = unit_rows(rng, n, d)
    ids = rng.permutation(np.arange(1000, 1000 + 7 * n, 7)).astype(np.int64)  # stable, non-contiguous ids
    index = VectorIndex(d)
    index.add(vectors, ids)
    return index, vectors, ids


def test_search_matches_brute_force_inner_product():
    rng = np.random.default_rng(10)
    index, vectors, ids = filled_index(rng)
    queries = unit_rows(rng, 5, 16)
    sims, found = index.search(queries, 7)
    want_sims, want_ids = brute_force(queries, vectors, ids, 7)
    assert sims.shape == (5, 7) and found.shape == (5, 7)
    assert found.dtype == np.int64
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(sims, want_sims, atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first
    # a stored vector finds itself with cosine 1
    sims, found = index.search(vectors[:3], 1)
    np.testing.assert_array_equal(found[:, 0], ids[:3])
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)


def test_add_rejects_wrong_shapes():
    index = VectorIndex(8)
    with pytest.raises(ValueError):
        index.add(np.zeros((3, 4), np.float32), np.arange(3))
    with pytest.raises(ValueError):
        index.add(np.zeros((3, 8), np.float32), np.arange(2))
    assert index.size == 0


def test_ids_survive_removal():
    rng = np.random.default_rng(11)
    index, vectors, ids = filled_index(rng)
    gone = ids[::3]
    assert index.remove(gone) == len(gone)
    assert index.size == len(ids) - len(gone)
    assert index.remove(np.array([123456789])) == 0  # unknown id: nothing removed

    keep = ~np.isin(ids, gone)
    queries = np.vstack([vectors[:6], unit_rows(rng, 4, 16)])
    sims, found = index.search(queries, index.size)
    assert not np.isin(found, gone).any()
    assert np.all(found >= 0)
    want_sims, want_ids = brute_force(queries, vectors[keep], ids[keep], index.size)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(sims, want_sims, atol=1e-5)
    # a remaining vector is still found under its own id
    for row in np.flatnonzero(keep)[:5]:
        s, f = index.search(vectors[row:row + 1], 1)
        assert f[0, 0] == ids[row] and s[0, 0] == pytest.approx(1.0, abs=1e-5)

    got_ids, got_vectors = index.reconstruct_all()
    np.testing.assert_array_equal(got_ids, ids[keep])
    np.testing.assert_allclose(got_vectors, vectors[keep], atol=1e-6)


def test_search_with_k_larger_than_size_returns_only_existing_ids():
    rng = np.random.default_rng(12)
    index, vectors, ids = filled_index(rng, n=5, d=8)
    sims, found = index.search(unit_rows(rng, 3, 8), 50)
    real = found >= 0
    assert set(found[real].tolist()) <= set(ids.tolist())
    assert np.all(np.isneginf(sims[~real]))  # any padding is flagged with -inf
    assert np.all(np.isfinite(sims[real]))
    assert found.shape[1] == 5 and real.all()  # the class clips k to the size
    for row in found:
        assert len(set(row.tolist())) == 5  # every reference exactly once


def test_search_on_empty_index_flags_missing_results():
    index = VectorIndex(8)
    sims, found = index.search(unit_rows(np.random.default_rng(13), 2, 8), 5)
    assert np.all(found == -1)
    assert np.all(np.isneginf(sims))
    ids, vectors = index.reconstruct_all()
    assert ids.shape == (0,) and vectors.shape == (0, 8)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(14)
    index, vectors, ids = filled_index(rng)
    index.remove(ids[:4])
    path = tmp_path / "vectors.faiss"
    index.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.dim == 16 and loaded.size == index.size
    queries = unit_rows(rng, 6, 16)
    for k in (1, 5, 100):
        a, b = index.search(queries, k), loaded.search(queries, k)
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[0], b[0])
    for x, y in zip(index.reconstruct_all(), loaded.reconstruct_all()):
        np.testing.assert_array_equal(x, y)
    # the loaded index keeps working with stable ids
    loaded.remove(ids[4:6])
    assert loaded.size == index.size - 2


def test_reconstruct_all_returns_added_vectors_in_insertion_order():
    rng = np.random.default_rng(15)
    index, vectors, ids = filled_index(rng, n=12, d=8)
    more = unit_rows(rng, 3, 8)
    index.add(more, np.array([5, 3, 9]))
    got_ids, got_vectors = index.reconstruct_all()
    np.testing.assert_array_equal(got_ids, np.concatenate([ids, [5, 3, 9]]))
    np.testing.assert_allclose(got_vectors, np.vstack([vectors, more]), atol=1e-6)
    assert got_ids.dtype == np.int64 and got_vectors.dtype == np.float32
