"""The approximate (IVF) kind of VectorIndex on ~20k seeded clustered vectors: recall against flat, stable ids
under removal, save/load, and the size-based choice of ``VectorIndex.for_vectors``. No CNN; a few seconds."""
import numpy as np
import pytest

from matcher.index.vectors import DEFAULT_NPROBE, FLAT_MAX, VectorIndex, ivf_nlist

D = 256
N = 20_000
FORCE_IVF = 1_000  # flat_max that sends N vectors to the IVF path


def mixture(rng, n, d=D, clusters=50, spread=1.5):
    """Unit vectors from a gaussian mixture: cluster centres plus isotropic noise (like product/photo groups).

    Spread enough that the cell count scanned matters: here nprobe 4 reaches recall@10 ~0.7 and 8 ~0.95."""
    centres = rng.standard_normal((clusters, d))
    x = centres[rng.integers(clusters, size=n)] + spread * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    vectors = mixture(rng, N + 500)
    database, queries = vectors[:N], vectors[N:]
    ids = rng.permutation(np.arange(10, 10 + 3 * N, 3)).astype(np.int64)  # stable, non-contiguous ids
    return database, ids, queries


@pytest.fixture(scope="module")
def ivf(data):
    database, ids, _ = data
    index = VectorIndex.for_vectors(D, N, flat_max=FORCE_IVF)
    index.add(database, ids)
    return index


def recall_at(k, found, truth):
    return np.mean([len(set(f) & set(t)) / k for f, t in zip(found[:, :k], truth[:, :k])])


def exact(database, ids, queries, k):
    flat = VectorIndex(D)
    flat.add(database, ids)
    return flat.search(queries, k)


def test_factory_chooses_flat_up_to_threshold_and_ivf_above():
    assert VectorIndex.for_vectors(D, 10).kind == "flat"
    assert VectorIndex.for_vectors(D, FLAT_MAX).kind == "flat"
    big = VectorIndex.for_vectors(D, FLAT_MAX + 1)
    assert big.approximate and big.kind == f"ivf{ivf_nlist(FLAT_MAX + 1)},nprobe={DEFAULT_NPROBE}"
    assert VectorIndex.for_vectors(D, 5000, flat_max=100).kind.startswith("ivf")
    assert VectorIndex.for_vectors(D, 50, flat_max=100).kind == "flat"
    assert VectorIndex(D).kind == "flat" and not VectorIndex(D).approximate
    assert ivf_nlist(1_000_000) == 4000


def test_ivf_kind_names_cells_and_nprobe(ivf):
    assert ivf.size == N
    nlist = min(ivf_nlist(N), N // 39)  # the first batch decides how many cells can be trained
    assert ivf.kind == f"ivf{nlist},nprobe={DEFAULT_NPROBE}"
    assert ivf.nprobe == DEFAULT_NPROBE


def test_ivf_recall_at_10_against_flat_at_default_nprobe(data, ivf):
    database, ids, queries = data
    want_sims, want = exact(database, ids, queries, 10)
    sims, found = ivf.search(queries, 10)
    assert found.shape == (len(queries), 10) and found.dtype == np.int64
    assert recall_at(10, found, want) >= 0.98
    ivf.nprobe = 2  # the test data is not trivially easy: scanning too few cells misses neighbours
    try:
        assert recall_at(10, ivf.search(queries, 10)[1], want) < 0.9
    finally:
        ivf.nprobe = DEFAULT_NPROBE
    # IVFFlat stores the vectors uncompressed: every similarity it returns is exact
    hit = found == want
    np.testing.assert_allclose(sims[hit], want_sims[hit], atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    # a stored vector finds itself with cosine 1
    s, f = ivf.search(database[:20], 1)
    np.testing.assert_array_equal(f[:, 0], ids[:20])
    np.testing.assert_allclose(s[:, 0], 1.0, atol=1e-5)


def test_ivf_ids_stable_after_remove_and_add(data):
    database, ids, queries = data
    index = VectorIndex.for_vectors(D, N, flat_max=FORCE_IVF)
    index.add(database, ids)
    gone = ids[::4]
    assert index.remove(gone) == len(gone)
    assert index.remove(np.array([7])) == 0  # unknown id
    assert index.size == N - len(gone)
    keep = ~np.isin(ids, gone)
    # the removed vectors themselves are queried: they must not come back
    sims, found = index.search(np.vstack([database[::4][:200], queries]), 10)
    assert not np.isin(found, gone).any()
    _, want = exact(database[keep], ids[keep], queries, 10)
    assert recall_at(10, found[200:], want) >= 0.98
    # remaining vectors are still found under their own ids
    rows = np.flatnonzero(keep)[:50]
    s, f = index.search(database[rows], 1)
    np.testing.assert_array_equal(f[:, 0], ids[rows])
    # adding after training keeps the new ids (no retraining, no renumbering)
    index.add(database[::4][:10], np.arange(900_000, 900_010))
    s, f = index.search(database[::4][:10], 1)
    np.testing.assert_array_equal(f[:, 0], np.arange(900_000, 900_010))
    got_ids, got_vectors = index.reconstruct_all()
    assert len(got_ids) == index.size and got_ids.dtype == np.int64 and got_vectors.dtype == np.float32
    order = np.argsort(got_ids)
    want_ids = np.concatenate([ids[keep], np.arange(900_000, 900_010)])
    want_vectors = np.vstack([database[keep], database[::4][:10]])
    want_order = np.argsort(want_ids)
    np.testing.assert_array_equal(got_ids[order], want_ids[want_order])
    np.testing.assert_array_equal(got_vectors[order], want_vectors[want_order])


def test_ivf_save_load_round_trip_keeps_nprobe(tmp_path, data, ivf):
    database, ids, queries = data
    ivf.nprobe = 7
    try:
        path = tmp_path / "vectors.faiss"
        ivf.save(path)
        loaded = VectorIndex.load(path)
    finally:
        ivf.nprobe = DEFAULT_NPROBE
    assert loaded.kind == ivf.kind.replace(f"nprobe={DEFAULT_NPROBE}", "nprobe=7") and loaded.nprobe == 7
    assert loaded.dim == D and loaded.size == ivf.size
    ivf.nprobe = 7
    try:
        for k in (1, 10):
            a, b = ivf.search(queries, k), loaded.search(queries, k)
            np.testing.assert_array_equal(a[1], b[1])
            np.testing.assert_array_equal(a[0], b[0])
    finally:
        ivf.nprobe = DEFAULT_NPROBE
    for x, y in zip(ivf.reconstruct_all(), loaded.reconstruct_all()):
        np.testing.assert_array_equal(x, y)
    assert loaded.remove(ids[:5]) == 5 and loaded.size == N - 5


def test_ivf_edge_cases():
    rng = np.random.default_rng(5)
    empty = VectorIndex.for_vectors(16, 10_000, flat_max=10)
    sims, found = empty.search(mixture(rng, 3, 16, clusters=4), 5)
    assert np.all(found == -1) and np.all(np.isneginf(sims))
    ids, vectors = empty.reconstruct_all()
    assert ids.shape == (0,) and vectors.shape == (0, 16)
    assert empty.remove(np.array([1])) == 0
    with pytest.raises(ValueError):
        empty.add(np.zeros((3, 8), np.float32), np.arange(3))
    with pytest.raises(ValueError):
        VectorIndex(8).nprobe = 4
    # a first batch too small for 4 sqrt(n) cells trains fewer cells; k is clipped to the size
    small = VectorIndex.for_vectors(16, 10_000, flat_max=10)
    x = mixture(rng, 100, 16, clusters=4)
    small.add(x, np.arange(100, 200))
    assert small.kind == f"ivf2,nprobe={DEFAULT_NPROBE}"
    sims, found = small.search(x[:3], 500)
    assert found.shape == (3, 100) and np.all(found >= 0)
    np.testing.assert_array_equal(found[:, 0], [100, 101, 102])
