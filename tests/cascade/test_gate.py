"""The cascade's gate: feature-map windows, the fitted gate model, and which listings get the expensive stages."""
from __future__ import annotations

from PIL import Image
import numpy as np
import pytest

from matcher.cascade.gate import GATE_FEATURES, fit_gate
from matcher.features.pooling import WINDOWS, gem, l2_normalise, window_descriptors
from matcher.index.scorer import LogisticModel, Scorer


def test_window_descriptors_pool_the_corners_and_centre_of_the_feature_map():
    rng = np.random.default_rng(0)
    feature_map = rng.random((2, 16, 7, 7), dtype=np.float32)
    feature_map[1, :, 3:, 3:] *= 10  # something bright in the bottom-right of the second image
    windows = window_descriptors(feature_map, 3.0)
    assert windows.shape == (2, WINDOWS, 16)
    np.testing.assert_allclose(windows[:, 0], l2_normalise(gem(feature_map[:, :, :4, :4], 3.0)), rtol=1e-5)
    np.testing.assert_allclose(windows[:, 3], l2_normalise(gem(feature_map[:, :, 3:, 3:], 3.0)), rtol=1e-5)
    np.testing.assert_allclose(windows[:, 4], l2_normalise(gem(feature_map[:, :, 1:6, 1:6], 3.0)), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(windows, axis=2), 1.0, rtol=1e-5)


def test_fit_gate_keeps_the_asked_recall_of_positives():
    rng = np.random.default_rng(1)
    positives = rng.normal(1.0, 1.0, (400, len(GATE_FEATURES)))
    negatives = rng.normal(-1.0, 1.0, (1600, len(GATE_FEATURES)))
    x = np.vstack([positives, negatives])
    y = np.r_[np.ones(400, bool), np.zeros(1600, bool)]
    model, threshold = fit_gate(x, y, recall=0.95)
    passed = model.predict(x) >= threshold
    assert passed[y].mean() == pytest.approx(0.95, abs=0.01)
    assert passed[~y].mean() < 0.2  # most negatives stop after the cheap stage


def test_scorer_round_trips_its_gate():
    model = LogisticModel(np.zeros(2), np.ones(2), np.array([1.0, -1.0]), 0.5)
    gate = LogisticModel(np.zeros(5), np.ones(5), np.arange(5.0), -1.0)
    scorer = Scorer(model, model, model, model, gate=gate, gate_threshold=0.3)
    restored = Scorer.from_dict(scorer.to_dict())
    assert restored.gate_threshold == 0.3
    np.testing.assert_array_equal(restored.gate.weights, gate.weights)
    assert Scorer.from_dict(Scorer(model, model, model, model).to_dict()).gate is None  # older indexes


def test_everyday_photos_stop_at_the_gate_and_catalog_products_go_on(demo_matcher, demo_truth):
    """On the demo index: every copy and product photo pays for region search + SIFT; everyday photos rank below
    all of them on the gate model, and at most one of them passes. (The threshold keeps 99% of ~115 synthetic
    detections, so it moves a little with each calibration change; a screenshot of grass sits on it.)"""
    from matcher.cascade.gate import gate_features
    from matcher.cascade.run import collect_evidence
    from matcher.cascade.settings import CascadeSettings
    from tests.conftest import DEMO

    listings = [name for name, row in demo_truth.items() if row["kind"] != "bad"]
    results = demo_matcher.match_many([DEMO / name for name in listings])
    verified = {name: any(m.inliers >= 0 for m in r.matches) for name, r in zip(listings, results)}
    kinds = {name: demo_truth[name]["kind"] for name in listings}
    assert all(verified[n] for n in listings if kinds[n] in ("copy", "same_product"))
    everyday = [n for n in listings if kinds[n] == "none"]
    assert sum(verified[n] for n in everyday) <= 1, [n for n in everyday if verified[n]]

    version, images = demo_matcher.version, [Image.open(DEMO / n).convert("RGB") for n in listings]
    evidence = collect_evidence(version.refs, demo_matcher.embedder, images, CascadeSettings(verify=False, regions=False),
                                scorer=version.scorer)
    gate_values = dict(zip(listings, version.scorer.gate.predict(gate_features(version.scorer, evidence))))
    assert max(gate_values[n] for n in everyday) < min(gate_values[n] for n in listings if n not in everyday)
    gate = version.manifest["calibration"]
    assert 0.0 < gate["gate_threshold"] < 1.0 and gate["gate_positives"] > 50


def test_a_conclusive_copy_skips_the_region_search_and_a_doubtful_listing_gets_it(demo_matcher):
    """Region search runs only where the global candidates did not verify conclusively; the verdict of a plain
    copy is the same either way, and a region-searched listing has its new candidates verified too."""
    from matcher.cascade.run import collect_evidence
    from matcher.cascade.settings import CascadeSettings
    from matcher.cascade.verification import settled
    from matcher.inputs.everyday import everyday_photos
    from tests.conftest import DEMO

    version, embedder = demo_matcher.version, demo_matcher.embedder
    photo = Image.open(sorted((DEMO / "catalog" / "Oatly-Natural-Oatghurt").glob("*.jpg"))[0]).convert("RGB")
    everyday = everyday_photos()[0]
    full = CascadeSettings(force_full=True)
    copy, other = collect_evidence(version.refs, embedder, [photo, everyday], full)
    assert settled(copy, full.settled_inliers) and not copy.regions_searched
    assert not settled(other, full.settled_inliers) and other.regions_searched
    # every candidate among the best verify_top by region similarity is verified
    ranked = sorted(other.candidates, key=lambda c: -c.region_similarity)[:full.verify_top]
    assert all(c.inliers >= 0 for c in ranked)

    always = collect_evidence(version.refs, embedder, [photo], CascadeSettings(force_full=True, settled_inliers=0))[0]
    assert always.regions_searched
    best = lambda ev: max(ev.candidates, key=lambda c: c.inliers).ref_id  # noqa: E731
    assert best(always) == best(copy)


def test_the_region_search_embeds_the_crops_whose_windows_look_like_the_catalog(demo_matcher):
    """A catalog photo pasted small into the bottom-right of an everyday scene: that feature-map window is among
    the best scored, so its crop is among the three the region search embeds, and the listing is matched."""
    from matcher.cascade.regions import _best_windows, region_crops
    from matcher.cascade.run import collect_evidence
    from matcher.cascade.settings import CascadeSettings
    from matcher.inputs.everyday import everyday_photos
    from tests.conftest import DEMO

    folder = DEMO / "catalog" / "Oatly-Natural-Oatghurt"
    photo = Image.open(sorted(folder.glob("*.jpg"))[0]).convert("RGB")
    scene = everyday_photos()[2].resize((640, 480))
    scene.paste(photo.resize((300, 225)), (330, 245))
    settings = CascadeSettings(force_full=True, settled_inliers=0)
    ev = collect_evidence(demo_matcher.version.refs, demo_matcher.embedder, [scene], settings)[0]
    assert len(ev.window_scores) == WINDOWS
    crops = region_crops(scene, settings.region_grid)
    kept = _best_windows(crops, ev.window_scores, settings.region_crops_kept)
    assert len(kept) == settings.region_crops_kept and any(c is crops[3] for c in kept)
    assert ev.regions_searched
    best = max(ev.candidates, key=lambda c: c.inliers)
    assert best.brand == "Oatly-Natural-Oatghurt" and best.inliers >= 15
