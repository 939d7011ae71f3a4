"""Logistic models and the scorer's serialisation, on tiny seeded synthetic data."""
import json

import numpy as np

from matcher.index.scorer import LogisticModel, Scorer, fit_logistic


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
    from matcher.cascade.evidence import BRAND_FEATURE_SIGNS, BRAND_FEATURES
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
