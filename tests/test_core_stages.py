"""Fast tests of the core stages on tiny seeded synthetic data (no CNN, no network).

whitening -> vector index -> evidence feature rows -> logistic scorer / verdict, plus catalog scanning and the
versioned index store.
"""
import hashlib
import json
import math

import numpy as np
import pytest

from matcher import store
from matcher.catalog import scan_catalog
from matcher.errors import CatalogError
from matcher.evidence import (BRAND_FEATURES, CHANCE_INLIERS, COPY_FEATURES, NOT_VERIFIED, Candidate,
                              ListingEvidence, brand_feature_rows, copy_feature_rows)
from matcher.index import VectorIndex
from matcher.score import (VERDICT_COPY, VERDICT_NO_MATCH, VERDICT_SAME_PRODUCT, LogisticModel, Scorer,
                           fit_logistic, verdict)
from matcher.whiten import Whitening, fit_whitening


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def correlated_descriptors(rng, n, d):
    """L2-normalised raw descriptors with a shared offset and strongly correlated dimensions."""
    mixing = rng.standard_normal((d, d)) * np.linspace(3.0, 0.1, d)[:, None]
    x = rng.standard_normal((n, d)) @ mixing + 2.0
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------------------------------------- whitening


def test_whitening_output_is_unit_norm_with_requested_dim():
    rng = np.random.default_rng(0)
    samples = correlated_descriptors(rng, 200, 16)
    w = fit_whitening(samples, dim=8)
    out = w.apply(samples)
    assert out.shape == (200, 8) and out.dtype == np.float32
    assert w.dim == 8
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # new (unseen) descriptors are projected the same way
    assert w.apply(correlated_descriptors(rng, 3, 16)).shape == (3, 8)


def test_whitening_dim_is_capped_at_n_minus_one():
    rng = np.random.default_rng(1)
    samples = correlated_descriptors(rng, 10, 16)
    w = fit_whitening(samples, dim=512)
    assert w.dim == 9
    out = w.apply(samples)
    assert out.shape == (10, 9)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # capped at D as well when n is large
    assert fit_whitening(correlated_descriptors(rng, 50, 16), dim=512).dim == 16


def test_whitened_training_covariance_is_identity_at_zero_shrinkage():
    rng = np.random.default_rng(2)
    samples = correlated_descriptors(rng, 300, 16)
    raw_cov = np.cov(samples, rowvar=False)
    assert np.abs(raw_cov - np.diag(np.diag(raw_cov))).max() > 1e-3  # the input really is correlated

    w = fit_whitening(samples, dim=8, shrinkage=0.0)
    projected = (samples.astype(np.float64) - w.mean) @ w.projection  # before the final L2 normalisation
    np.testing.assert_allclose(np.cov(projected, rowvar=False), np.eye(8), atol=1e-3)

    # after L2 normalisation the dimensions stay decorrelated with comparable variances (~ I / d)
    cov = np.cov(w.apply(samples), rowvar=False)
    diag = np.diag(cov)
    assert np.abs(cov - np.diag(diag)).max() < 0.25 * diag.mean()
    assert diag.max() < 2.0 * diag.min()


def test_whitening_shrinkage_damps_small_directions():
    rng = np.random.default_rng(3)
    samples = correlated_descriptors(rng, 300, 16)
    w = fit_whitening(samples, dim=8, shrinkage=0.5)
    variances = np.var((samples.astype(np.float64) - w.mean) @ w.projection, axis=0, ddof=1)
    assert np.all(variances < 1.0)
    assert np.all(np.diff(variances) <= 1e-9)  # the smaller the eigenvalue, the more it is damped


def test_whitening_arrays_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    samples = correlated_descriptors(rng, 60, 12)
    w = fit_whitening(samples, dim=6)
    path = tmp_path / "whitening.npz"
    np.savez(path, **w.to_arrays())
    with np.load(path) as arrays:
        restored = Whitening.from_arrays(arrays)
    queries = correlated_descriptors(rng, 7, 12)
    assert restored.dim == w.dim
    assert np.array_equal(restored.apply(queries), w.apply(queries))
    assert np.array_equal(Whitening.from_arrays(w.to_arrays()).apply(queries), w.apply(queries))


# --------------------------------------------------------------------------------------------- VectorIndex


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


# ------------------------------------------------------------------------------------------------- scoring


def logistic_data(seed=20, m=2000):
    rng = np.random.default_rng(seed)
    informative = rng.standard_normal(m)
    noise = rng.standard_normal(m)
    p = 1.0 / (1.0 + np.exp(-(3.0 * informative - 1.0)))
    labels = rng.random(m) < p
    return np.column_stack([informative, noise]), labels


def test_fit_logistic_monotone_and_calibrated():
    x, y = logistic_data()
    model = fit_logistic(x, y)
    assert model.n_features == 2
    assert model.weights[0] > 0 and abs(model.weights[1]) < 0.2 * model.weights[0]

    grid = np.column_stack([np.linspace(-3, 3, 50), np.zeros(50)])
    p = model.predict(grid)
    assert np.all(np.diff(p) > 0)  # monotone in the informative feature
    assert p[0] < 0.05 and p[-1] > 0.95
    assert np.all((p >= 0) & (p <= 1))

    assert abs(model.predict(x).mean() - y.mean()) < 0.05  # calibrated in the large (training set)
    x_new, y_new = logistic_data(seed=21)
    probs = model.predict(x_new)
    assert abs(probs.mean() - y_new.mean()) < 0.05  # and on fresh data
    for lo, hi in [(0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.0)]:  # roughly calibrated per bin
        in_bin = (probs >= lo) & (probs < hi)
        assert abs(probs[in_bin].mean() - y_new[in_bin].mean()) < 0.1


def test_fit_logistic_reads_only_the_first_n_features():
    x, y = logistic_data(seed=22, m=500)
    junk = np.random.default_rng(23).standard_normal((len(x), 3)) * 100
    wide = np.hstack([x[:, :1], junk])
    model = fit_logistic(wide, y, n_features=1)
    assert model.n_features == 1 and model.mean.shape == (1,) and model.scale.shape == (1,)
    reference = fit_logistic(x[:, :1], y)
    np.testing.assert_allclose(model.predict(wide), reference.predict(x[:, :1]), atol=1e-12)
    # the extra columns are ignored at prediction time too
    np.testing.assert_array_equal(model.predict(wide), model.predict(np.hstack([wide[:, :1], -junk])))


def test_fit_logistic_sample_weight_counts_as_repeated_rows():
    x, y = logistic_data(seed=26, m=400)
    weight = np.where(y, 1.0, 3.0)  # every negative counted three times
    weighted = fit_logistic(x, y, sample_weight=weight)
    repeated = fit_logistic(np.vstack([x, x[~y], x[~y]]), np.r_[y, y[~y], y[~y]])
    np.testing.assert_allclose(weighted.predict(x), repeated.predict(x), atol=1e-9)
    # heavier negatives lower every probability: the model now expects negatives three times as often
    assert np.all(weighted.predict(x) < fit_logistic(x, y).predict(x))


def _correlated_data(seed=27, m=1500):
    """a informs the label; b = a + noise adds nothing but, fitted freely, takes a negative weight."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(m)
    b = a + 0.3 * rng.standard_normal(m)
    labels = rng.random(m) < 1.0 / (1.0 + np.exp(-(4.0 * a - 2.0 * b)))
    return np.column_stack([a, b]), labels


def test_fit_logistic_signs_forbid_a_wrong_sign_weight():
    x, y = _correlated_data()
    free = fit_logistic(x, y)
    assert free.weights[1] < 0  # the data make b look like counter-evidence, given a
    constrained = fit_logistic(x, y, signs=np.array([0, +1]))
    assert constrained.weights[1] == 0.0 and constrained.weights[0] > 0
    # b is then simply left out: the same model as one fitted on a alone
    np.testing.assert_allclose(constrained.predict(x), fit_logistic(x[:, :1], y).predict(x[:, :1]), atol=1e-6)
    # raising b never lowers a probability under the constraint, as it did when fitted freely
    bumped = x + np.array([0.0, 1.0])
    assert np.all(constrained.predict(bumped) >= constrained.predict(x))
    assert np.all(free.predict(bumped) < free.predict(x))


def test_fit_logistic_signs_that_hold_change_nothing():
    x, y = _correlated_data()
    np.testing.assert_allclose(fit_logistic(x, y, signs=np.array([+1, -1])).predict(x),
                               fit_logistic(x, y).predict(x), atol=1e-12)


def test_demo_index_scorer_obeys_the_colour_signs(demo_matcher):
    from matcher.evidence import BRAND_FEATURE_SIGNS, BRAND_FEATURES
    weights = demo_matcher.version.scorer.brand_full.weights
    for name, sign in BRAND_FEATURE_SIGNS.items():
        assert sign * weights[BRAND_FEATURES.index(name)] >= 0, name


def test_fit_logistic_survives_separable_data():
    x = np.column_stack([np.r_[np.linspace(-2, -0.1, 20), np.linspace(0.1, 2, 20)], np.zeros(40)])
    y = x[:, 0] > 0
    model = fit_logistic(x, y)
    p = model.predict(x)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(model.weights))
    assert np.all(p[y] > 0.5) and np.all(p[~y] < 0.5)


def test_logistic_model_dict_round_trip():
    x, y = logistic_data(seed=24, m=300)
    model = fit_logistic(x, y)
    d = json.loads(json.dumps(model.to_dict()))
    restored = LogisticModel.from_dict(d)
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))
    assert restored.n_features == model.n_features and restored.bias == model.bias


def test_scorer_dict_round_trip():
    x, y = logistic_data(seed=25, m=300)
    models = [fit_logistic(x, y, n_features=n, l2=l2) for n, l2 in [(1, 1.0), (2, 1.0), (1, 5.0), (2, 0.1)]]
    scorer = Scorer(*models, threshold=0.73, verify_gate=0.05)
    restored = Scorer.from_dict(json.loads(json.dumps(scorer.to_dict())))
    assert restored.threshold == 0.73 and restored.verify_gate == 0.05
    for name in ("brand_global", "brand_full", "copy_global", "copy_full"):
        np.testing.assert_array_equal(getattr(restored, name).predict(x), getattr(scorer, name).predict(x))
    default = Scorer.from_dict(Scorer(*models).to_dict())
    assert default.threshold == 0.5 and default.verify_gate == 0.02


def test_verdict_thresholds():
    assert verdict(0.59, 0.99, threshold=0.6) == VERDICT_NO_MATCH
    assert verdict(0.0, 0.0, threshold=0.6) == VERDICT_NO_MATCH
    assert verdict(0.6, 0.5, threshold=0.6) == VERDICT_COPY  # both comparisons are inclusive
    assert verdict(0.6, 0.49, threshold=0.6) == VERDICT_SAME_PRODUCT
    assert verdict(0.95, 0.99, threshold=0.6) == VERDICT_COPY
    assert verdict(0.95, 0.1, threshold=0.6) == VERDICT_SAME_PRODUCT
    assert verdict(0.2, 0.9, threshold=0.1) == VERDICT_COPY


# ------------------------------------------------------------------------------------------------- catalog


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_scan_catalog_layout(tmp_path):
    root = tmp_path / "catalog"
    write(root / "Acme" / "front.JPG", b"acme-front")
    write(root / "Acme" / "bottles" / "side.png", b"acme-side")
    write(root / "Acme" / "bottles" / ".hidden.jpg", b"hidden file")
    write(root / "Acme" / ".thumbs" / "thumb.jpg", b"hidden folder")
    write(root / "Acme" / "notes.txt", b"not an image")
    write(root / "Beta" / "b.WebP", b"beta-b")
    write(root / "Beta" / "b2.webp", b"beta-b")  # duplicate of b.WebP in the same folder
    write(root / "Beta" / "Shoes" / "a.JpEg", b"beta-a")
    write(root / "Beta" / "Shoes" / "reuse.jpg", b"acme-front")  # duplicate of another brand's photo
    write(root / ".cache" / "x.jpg", b"hidden brand")
    write(root / "loose.jpg", b"not inside a brand folder")

    images = scan_catalog(root)
    paths = [im.path for im in images]
    assert sorted(paths) == sorted(["Acme/front.JPG", "Acme/bottles/side.png", "Beta/b.WebP", "Beta/Shoes/a.JpEg"])
    assert [im.brand for im in images] == ["Acme", "Acme", "Beta", "Beta"]  # brand by brand, sorted
    assert scan_catalog(str(root)) == images  # deterministic, accepts str
    for im in images:
        assert im.file.is_absolute() and im.file == (root / im.path).resolve()
        assert im.sha256 == hashlib.sha256(im.file.read_bytes()).hexdigest()
    assert len({im.sha256 for im in images}) == len(images)


def test_scan_catalog_duplicates_keep_first_in_sorted_order(tmp_path):
    root = tmp_path / "catalog"
    write(root / "Zeta" / "a.jpg", b"same bytes")
    write(root / "Alpha" / "z.jpg", b"same bytes")
    write(root / "Alpha" / "y.png", b"other bytes")
    write(root / "Alpha" / "x.png", b"other bytes")
    write(root / "Zeta" / "b.jpg", b"zeta own")
    images = scan_catalog(root)
    assert [im.path for im in images] == ["Alpha/x.png", "Alpha/z.jpg", "Zeta/b.jpg"]


def test_scan_catalog_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CatalogError, match="not found") as err:
        scan_catalog(missing)
    assert str(missing) in str(err.value)


def test_scan_catalog_file_instead_of_folder(tmp_path):
    file = write(tmp_path / "catalog.jpg", b"an image, not a folder")
    with pytest.raises(CatalogError) as err:
        scan_catalog(file)
    assert str(file) in str(err.value)


@pytest.mark.parametrize("layout", ["nothing", "only_loose_images", "no_images_in_brands", "only_hidden"])
def test_scan_catalog_empty(tmp_path, layout):
    root = tmp_path / "catalog"
    root.mkdir()
    if layout == "only_loose_images":
        write(root / "photo.jpg", b"loose")
    elif layout == "no_images_in_brands":
        write(root / "Acme" / "readme.txt", b"text")
        (root / "Beta").mkdir()
    elif layout == "only_hidden":
        write(root / "Acme" / ".photo.jpg", b"hidden")
        write(root / ".git" / "x.jpg", b"hidden brand")
    with pytest.raises(CatalogError, match="empty catalog") as err:
        scan_catalog(root)
    assert str(root) in str(err.value)


# --------------------------------------------------------------------------------------------------- store


def write_version(index_dir, payload: bytes, **extra_files):
    temp = store.new_version_folder(index_dir)
    assert temp.name.startswith(store.TEMP_PREFIX)
    (temp / "vectors.faiss").write_bytes(payload)
    store.write_references(temp / "references.csv", [store.ReferenceRecord(1, "Acme", "Acme/a.jpg", "ab" * 32)])
    for name, data in extra_files.items():
        (temp / name).write_bytes(data)
    return temp


def test_publish_switches_current_and_keeps_previous(tmp_path):
    index_dir = tmp_path / "index"
    assert store.current_version(index_dir) is None
    assert store.list_versions(index_dir) == []

    first = store.publish(index_dir, write_version(index_dir, b"one"), {"label": "first"})
    assert first.name == "v000001"
    assert store.current_version(index_dir) == first
    second = store.publish(index_dir, write_version(index_dir, b"two"), {"label": "second"})
    assert second.name == "v000002"
    assert store.current_version(index_dir) == second
    assert (index_dir / store.POINTER).read_text().strip() == "v000002"
    assert store.list_versions(index_dir) == [first, second]
    assert (first / "vectors.faiss").read_bytes() == b"one"  # the old version is intact
    assert json.loads((first / "manifest.json").read_text())["label"] == "first"
    refs = store.read_references(second / "references.csv")
    assert refs == [store.ReferenceRecord(1, "Acme", "Acme/a.jpg", "ab" * 32)]
    # no temporary debris left behind
    assert not [p for p in store.versions_dir(index_dir).iterdir() if p.name.startswith(store.TEMP_PREFIX)]
    assert not list(index_dir.glob("CURRENT.*"))


def test_crash_leftovers_are_ignored_and_collected(tmp_path):
    index_dir = tmp_path / "index"
    published = store.publish(index_dir, write_version(index_dir, b"good"), {})
    crashed = write_version(index_dir, b"half-writ")  # a build that died before publish
    stale_pointer = index_dir / "CURRENT.deadbeef.tmp"
    stale_pointer.write_text("v999999\n")

    assert store.current_version(index_dir) == published
    assert store.list_versions(index_dir) == [published]

    removed = store.collect_garbage(index_dir)
    assert crashed in removed
    assert not crashed.exists() and not stale_pointer.exists()
    assert published.is_dir() and store.current_version(index_dir) == published

    # a crash before the first publish leaves no current version at all
    fresh = tmp_path / "fresh"
    write_version(fresh, b"never published")
    assert store.current_version(fresh) is None and store.list_versions(fresh) == []
    store.collect_garbage(fresh)
    assert list(store.versions_dir(fresh).iterdir()) == []


def test_publish_after_crash_cleans_up_and_numbers_on(tmp_path):
    index_dir = tmp_path / "index"
    store.publish(index_dir, write_version(index_dir, b"one"), {})
    crashed = write_version(index_dir, b"dead")
    second = store.publish(index_dir, write_version(index_dir, b"two"), {})
    assert second.name == "v000002" and store.current_version(index_dir) == second
    assert not crashed.exists()


def test_keep_limits_old_versions_but_never_removes_current(tmp_path):
    index_dir = tmp_path / "index"
    versions = [store.publish(index_dir, write_version(index_dir, bytes([i])), {}, keep=2) for i in range(3)]
    assert [v.name for v in versions] == ["v000001", "v000002", "v000003"]
    assert store.list_versions(index_dir) == versions[1:]  # the oldest beyond keep=2 is gone
    assert store.current_version(index_dir) == versions[2]

    # numbering continues after removal
    fourth = store.publish(index_dir, write_version(index_dir, b"4"), {}, keep=10)
    assert fourth.name == "v000004"
    assert store.list_versions(index_dir) == [versions[1], versions[2], fourth]

    # roll back to the oldest version: garbage collection must keep it even though it is the oldest
    (index_dir / store.POINTER).write_text(versions[1].name + "\n")
    store.collect_garbage(index_dir, keep=2)
    assert store.current_version(index_dir) == versions[1]
    assert store.list_versions(index_dir) == [versions[1], fourth]
    store.collect_garbage(index_dir, keep=1)
    assert store.list_versions(index_dir) == [versions[1]]
    store.collect_garbage(index_dir, keep=0)
    assert store.list_versions(index_dir) == [versions[1]]
    assert (versions[1] / "vectors.faiss").read_bytes() == bytes([1])


def test_manifest_lists_every_file_with_hash_and_size(tmp_path):
    index_dir = tmp_path / "index"
    payloads = {"raw_descriptors.npy": b"\x00" * 1000, "scorer.json": b'{"threshold": 0.5}', "empty.bin": b""}
    temp = write_version(index_dir, b"vectors!", **payloads)
    written = {p.name for p in temp.iterdir()}
    version = store.publish(index_dir, temp, {"model": "fingerprint", "counts": {"references": 1}})
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"] == "fingerprint" and manifest["counts"] == {"references": 1}
    assert manifest["format_version"] == store.FORMAT_VERSION
    assert set(manifest["files"]) == written
    assert "manifest.json" not in manifest["files"]
    for name, info in manifest["files"].items():
        data = (version / name).read_bytes()
        assert info == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        assert info["sha256"] == store.file_sha256(version / name)


# ------------------------------------------------------------------------------------------------ evidence


def hand_made_evidence():
    c = [
        Candidate(1, "Acme", 0.9, 0.9, inliers=20, distinctive=8),  # 12 inliers on a logo Beta shares
        Candidate(2, "Beta", 0.8, 0.8, inliers=5, distinctive=5),
        Candidate(3, "Acme", 0.7, 0.7),
        Candidate(4, "Corp", 0.6, 0.6),
        Candidate(5, "Beta", 0.5, 0.5, inliers=0),
        Candidate(6, "Acme", 0.4, 0.4),  # sixth: outside the top 5
    ]
    return ListingEvidence(candidates=c, background_similarity=0.3)


def feature(row, name):
    return float(row[BRAND_FEATURES.index(name)])


def counted(inliers):
    """What a feature row holds for a verified count: the log of its part above chance."""
    return math.log1p(max(inliers - CHANCE_INLIERS, 0))


def test_brand_feature_rows_hand_made():
    brands, best_refs, rows = brand_feature_rows(hand_made_evidence())
    assert brands == ["Acme", "Beta", "Corp"]  # best first
    assert best_refs == [1, 2, 4]
    assert rows.shape == (3, len(BRAND_FEATURES)) and rows.dtype == np.float32
    acme, beta, corp = rows
    approx = lambda v: pytest.approx(v, abs=1e-6)

    assert feature(acme, "max_sim") == approx(0.9)
    assert feature(acme, "second_sim") == approx(0.7)
    assert feature(acme, "margin_next_brand") == approx(0.1)
    assert feature(beta, "margin_next_brand") == approx(-0.1)
    assert feature(corp, "margin_next_brand") == approx(-0.3)
    assert feature(corp, "second_sim") == approx(0.4)  # a lone candidate falls back to the weakest similarity
    # top-5 share counts only the five best candidates (ref 6 of Acme is the sixth)
    assert [feature(r, "top5_share") for r in rows] == [approx(0.4), approx(0.4), approx(0.2)]
    assert feature(acme, "sim_minus_background") == approx(0.6)
    assert all(feature(r, "background_sim") == approx(0.3) for r in rows)
    assert feature(acme, "max_region_sim") == approx(0.9)
    assert feature(acme, "region_margin_next_brand") == approx(0.1)
    assert feature(acme, "log_max_inliers") == approx(counted(20))
    assert feature(acme, "log_second_inliers") == approx(0.0)  # NOT_VERIFIED counts as 0 inliers
    assert feature(acme, "inlier_margin") == approx(counted(20))  # Beta's 5 inliers are chance level: 0
    assert feature(beta, "inlier_margin") == approx(-counted(20))
    assert feature(corp, "log_max_inliers") == approx(0.0)
    assert feature(acme, "log_max_distinctive") == approx(counted(8))
    assert feature(acme, "distinctive_margin") == approx(counted(8))
    assert feature(corp, "distinctive_margin") == approx(-counted(8))


def test_chance_level_inliers_count_as_no_evidence():
    """RANSAC fits a homography to any 4 matches, so unrelated photos verify with a handful of inliers: a brand
    whose references verified with at most CHANCE_INLIERS looks, to the scorer, like one that was not verified."""
    def rows_with(inliers):
        ev = ListingEvidence(candidates=[Candidate(1, "Acme", 0.6, 0.6, inliers=inliers, distinctive=inliers),
                                         Candidate(2, "Beta", 0.5, 0.5)], background_similarity=0.1)
        return brand_feature_rows(ev)[2], copy_feature_rows(ev)[1]
    unverified_brand, unverified_copy = rows_with(NOT_VERIFIED)
    for chance in range(CHANCE_INLIERS + 1):
        brand_rows, copy_rows = rows_with(chance)
        np.testing.assert_array_equal(brand_rows, unverified_brand)
        np.testing.assert_array_equal(copy_rows, unverified_copy)
    brand_rows, copy_rows = rows_with(CHANCE_INLIERS + 10)
    assert feature(brand_rows[0], "log_max_inliers") == pytest.approx(math.log1p(10))
    assert copy_rows[0, COPY_FEATURES.index("log_inliers")] == pytest.approx(math.log1p(10))


def test_training_rows_label_each_kind_and_weigh_sister_listings():
    """Rows of a sister listing (a look-alike of a brand the search cannot see) are all negatives, and count
    sister_weight times; a copy's own brand and photo are the positives."""
    from PIL import Image
    from matcher.calibrate import SyntheticListing, training_rows

    def evidence():
        return ListingEvidence(candidates=[Candidate(1, "Acme", 0.7, 0.7), Candidate(2, "Beta", 0.5, 0.5),
                                           Candidate(3, "Acme", 0.4, 0.4)], background_similarity=0.1)
    image = Image.new("RGB", (8, 8))
    listings = [SyntheticListing(image, "copy", "Acme", 3, frozenset()),
                SyntheticListing(image, "sister", "Gamma", -1, frozenset({7})),
                SyntheticListing(image, "background", "", -1, frozenset())]
    rows = training_rows([evidence() for _ in listings], listings, sister_weight=4.0)
    assert rows["brand_y"].tolist() == [True, False, False, False, False, False]  # brands best first: Acme, Beta
    assert rows["brand_w"].tolist() == [1, 1, 4, 4, 1, 1]
    assert rows["copy_y"].tolist() == [False, False, True] + [False] * 6  # the copied photo is reference 3
    assert rows["copy_w"].tolist() == [1] * 3 + [4] * 3 + [1] * 3


def test_a_brands_colour_features_come_from_its_best_aligned_reference():
    from matcher.colour import ColourDifference
    ev = ListingEvidence(candidates=[
        Candidate(1, "Acme", 0.9, 0.9, inliers=40, colour_distance=ColourDifference(0.5, 30.0, 0.4)),
        # few inliers align a small patch only: its agreeing colours must not outvote the best alignment
        Candidate(2, "Acme", 0.8, 0.8, inliers=8, colour_distance=ColourDifference(0.2, 2.0, 0.0)),
        Candidate(3, "Beta", 0.7, 0.7, inliers=5),
    ], background_similarity=0.1)
    _, _, (acme, beta) = brand_feature_rows(ev)
    assert feature(acme, "colour_checked") == 1.0
    assert feature(acme, "colour_distance") == pytest.approx(0.005)  # in units of 100
    assert feature(acme, "colour_patch") == pytest.approx(0.30)
    assert feature(acme, "colour_mismatch") == pytest.approx(0.4)  # a share already
    names = ("colour_checked", "colour_distance", "colour_patch", "colour_mismatch")
    assert [feature(beta, n) for n in names] == [0.0, 0.0, 0.0, 0.0]


def test_brand_rows_order_by_region_similarity():
    ev = ListingEvidence(candidates=[Candidate(1, "Acme", 0.8, 0.8), Candidate(2, "Beta", 0.7, 0.95)],
                         background_similarity=0.1, regions_searched=True)
    brands, best_refs, rows = brand_feature_rows(ev)
    assert brands == ["Beta", "Acme"]  # a region match outranks a slightly better whole-image match
    assert best_refs == [2, 1]
    assert feature(rows[0], "region_margin_next_brand") == pytest.approx(0.15, abs=1e-6)
    assert feature(rows[0], "margin_next_brand") == pytest.approx(-0.1, abs=1e-6)


def test_single_brand_and_empty_evidence():
    ev = ListingEvidence(candidates=[Candidate(7, "Acme", 0.9, 0.9), Candidate(8, "Acme", 0.5, 0.6)],
                         background_similarity=0.2)
    brands, best_refs, rows = brand_feature_rows(ev)
    assert brands == ["Acme"] and best_refs == [7]
    assert feature(rows[0], "margin_next_brand") == pytest.approx(0.4, abs=1e-6)  # against the weakest candidate
    assert feature(rows[0], "top5_share") == pytest.approx(0.4, abs=1e-6)

    empty = ListingEvidence(candidates=[], background_similarity=0.2)
    brands, best_refs, rows = brand_feature_rows(empty)
    assert brands == [] and best_refs == [] and rows.shape == (0, len(BRAND_FEATURES))
    ref_ids, rows = copy_feature_rows(empty)
    assert ref_ids == [] and rows.shape == (0, len(COPY_FEATURES))


def test_copy_feature_rows_hand_made():
    ev = hand_made_evidence()
    ev.candidates[1].mirrored = True
    ref_ids, rows = copy_feature_rows(ev)
    assert ref_ids == [1, 2, 3, 4, 5, 6]
    assert rows.shape == (6, len(COPY_FEATURES)) and rows.dtype == np.float32
    col = {name: rows[:, i] for i, name in enumerate(COPY_FEATURES)}
    np.testing.assert_allclose(col["sim"], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], atol=1e-6)
    np.testing.assert_allclose(col["margin_next_ref"], [0.1, -0.1, -0.2, -0.3, -0.4, -0.5], atol=1e-6)
    np.testing.assert_allclose(col["sim_minus_background"], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1], atol=1e-6)
    np.testing.assert_allclose(col["log_inliers"][:3], [counted(20), counted(5), 0.0], atol=1e-6)
    np.testing.assert_allclose(col["inlier_margin"][:2], [counted(20) - counted(5),
                                                          counted(5) - counted(20)], atol=1e-6)
    np.testing.assert_array_equal(col["mirrored"], [0, 1, 0, 0, 0, 0])

    single = ListingEvidence(candidates=[Candidate(9, "Acme", 0.7, 0.75, inliers=NOT_VERIFIED)],
                             background_similarity=0.1)
    ref_ids, rows = copy_feature_rows(single)
    assert ref_ids == [9]
    assert rows[0, COPY_FEATURES.index("margin_next_ref")] == 0.0
    assert rows[0, COPY_FEATURES.index("region_sim")] == pytest.approx(0.75)


def test_copy_rows_margins_with_tied_leaders():
    """Two references equally close: neither leads the other (margin 0), the rest trail the shared best."""
    tied = [Candidate(1, "Acme", 0.8, 0.8, inliers=10), Candidate(2, "Beta", 0.8, 0.8, inliers=10)]
    ev = ListingEvidence(candidates=tied + [Candidate(3, "Corp", 0.5, 0.5, inliers=3)], background_similarity=0.0)
    _, rows = copy_feature_rows(ev)
    np.testing.assert_allclose(rows[:, COPY_FEATURES.index("margin_next_ref")], [0.0, 0.0, -0.3], atol=1e-6)
    np.testing.assert_allclose(rows[:, COPY_FEATURES.index("inlier_margin")],
                               [0.0, 0.0, counted(3) - counted(10)], atol=1e-6)
