"""PCA-whitening fitted on tiny seeded synthetic descriptors."""

import numpy as np

from matcher.index.whitening import Whitening, fit_whitening


def correlated_descriptors(rng, n, d):
    """L2-normalised raw descriptors with a shared offset and strongly correlated dimensions."""
    mixing = rng.standard_normal((d, d)) * np.linspace(3.0, 0.1, d)[:, None]
    x = rng.standard_normal((n, d)) @ mixing + 2.0
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


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
