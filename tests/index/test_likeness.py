"""Listing likeness (likeness.py): the gate's check that a listing looks like the catalog's listings at all."""
from __future__ import annotations

from PIL import Image
import numpy as np
import pytest

from matcher.features.pooling import l2_normalise
from matcher.index.likeness import LIKENESS_FILE, ListingLikeness, fit_threshold
from matcher.index.scorer import LogisticModel, Scorer


def _likeness(rng, sources) -> ListingLikeness:
    return ListingLikeness(l2_normalise(rng.normal(size=(len(sources), 16))), np.asarray(sources, np.int64))


def test_likeness_is_the_best_cosine_and_leaving_out_ignores_the_listings_of_hidden_references():
    rng = np.random.default_rng(0)
    likeness = _likeness(rng, [7, 7, 8, 9])
    raw = likeness.vectors[[0, 2]] * 0.9 + l2_normalise(rng.normal(size=(2, 16))) * 0.1
    raw = l2_normalise(raw)
    np.testing.assert_allclose(likeness.of(raw), (raw @ likeness.vectors.T).max(axis=1), rtol=1e-6)
    hidden = likeness.leaving_out(raw, [{7}, set()])
    assert hidden[0] == pytest.approx((raw[0] @ likeness.vectors[2:].T).max(), rel=1e-6)  # its own source's gone
    assert hidden[1] == pytest.approx(likeness.of(raw)[1], rel=1e-6)
    assert likeness.leaving_out(raw, [{7, 8, 9}, {7, 8, 9}]).tolist() == [-1.0, -1.0]
    assert ListingLikeness.empty(16).of(raw).tolist() == [-1.0, -1.0]


def test_likeness_follows_the_references_and_round_trips_in_half_precision(tmp_path):
    rng = np.random.default_rng(1)
    likeness = _likeness(rng, [1, 1, 2, 3])
    kept = likeness.keeping({1, 3}).plus(_likeness(rng, [5]))
    assert kept.sources.tolist() == [1, 1, 3, 5] and kept.vectors.dtype == np.float32
    kept.save(tmp_path / LIKENESS_FILE)
    loaded = ListingLikeness.load(tmp_path / LIKENESS_FILE, 16)
    assert loaded.sources.tolist() == [1, 1, 3, 5]
    np.testing.assert_allclose(loaded.vectors, kept.vectors, atol=1e-3)
    assert len(ListingLikeness.load(tmp_path / "absent.npz", 16)) == 0  # an index saved before likeness


def test_fit_threshold_keeps_the_asked_share_of_worthwhile_listings():
    likeness = np.linspace(0.0, 1.0, 1001)
    worth = np.arange(1001) % 2 == 0
    threshold = fit_threshold(likeness, worth, recall=0.9)
    assert np.mean(likeness[worth] >= threshold) == pytest.approx(0.9, abs=0.01)
    assert fit_threshold(likeness, np.zeros(1001, bool), recall=0.999) is None


def test_scorer_round_trips_its_likeness_threshold():
    model = LogisticModel(np.zeros(2), np.ones(2), np.array([1.0, -1.0]), 0.5)
    restored = Scorer.from_dict(Scorer(model, model, model, model, likeness_threshold=0.6).to_dict())
    assert restored.likeness_threshold == 0.6
    assert Scorer.from_dict(Scorer(model, model, model, model).to_dict()).likeness_threshold is None


def test_the_demo_index_keeps_every_product_listing_and_stops_photos_unlike_them(demo_matcher, demo_truth):
    """The demo index's likeness set holds its copy and same-product listings; every demo copy and product photo
    reaches the likeness threshold, while flat or random pictures, which look like no product listing, do not and
    so skip the expensive stages."""
    from matcher.cascade.gate import alike
    from matcher.cascade.run import collect_evidence
    from matcher.cascade.settings import CascadeSettings
    from tests.conftest import DEMO

    version = demo_matcher.version
    per_reference = len(version.refs.likeness) / len(version.refs.references)
    assert 3 <= per_reference <= 4  # 3 copies and (brands with >1 photo) a same-product view per reference
    threshold = version.scorer.likeness_threshold
    assert 0.0 < threshold < 1.0 and version.manifest["calibration"]["likeness_threshold"] == threshold

    products = [n for n, row in demo_truth.items() if row["kind"] in ("copy", "same_product")]
    images = [Image.open(DEMO / n).convert("RGB") for n in products]
    rng = np.random.default_rng(0)
    unlike = [Image.new("RGB", (640, 480), (40, 90, 200)),
              Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))]
    evidence = collect_evidence(version.refs, demo_matcher.embedder, images + unlike,
                                CascadeSettings(verify=False, regions=False), scorer=version.scorer)
    likeness = [ev.likeness for ev in evidence]
    assert min(likeness[:len(products)]) >= threshold, dict(zip(products, likeness))
    assert max(likeness[len(products):]) < threshold
    assert alike(version.scorer, evidence).tolist() == [True] * len(products) + [False] * len(unlike)


def test_a_listing_unlike_the_catalog_is_dismissed_without_the_expensive_stages(demo_matcher):
    """Even where the gate model would let it through, a picture unlike any listing of the catalog skips SIFT and
    the region search, and the full models score it as if they found nothing."""
    from dataclasses import replace

    from matcher.cascade.run import collect_evidence
    from matcher.cascade.scoring import score_evidence
    from matcher.cascade.settings import CascadeSettings

    version = demo_matcher.version
    noise = Image.fromarray(np.random.default_rng(2).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    opened = replace(version.scorer, gate_threshold=0.0)  # the gate model lets everything through
    ev = collect_evidence(version.refs, demo_matcher.embedder, [noise], CascadeSettings(), scorer=opened)[0]
    assert ev.dismissed and not ev.verified and not ev.regions_searched
    assert all(c.inliers < 0 for c in ev.candidates)
    result = score_evidence(version.refs, opened, ev)
    assert result.verdict == "no_match" and result.matches[0].score < version.scorer.threshold
    assert result.checks == "dismissed"
