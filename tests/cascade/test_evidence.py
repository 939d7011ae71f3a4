"""Evidence feature rows built by hand: what the scorer reads."""
import math

import numpy as np
import pytest

from matcher.cascade.evidence import (BRAND_FEATURES, CHANCE_INLIERS, COPY_FEATURES, NOT_VERIFIED, Candidate,
                                      ListingEvidence, brand_feature_rows, copy_feature_rows)


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

    from matcher.building.calibration import SyntheticListing, training_rows

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
    from matcher.features.colour import ColourDifference
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
