"""Keypoints shared between brands (product families) and the distinctive inliers they leave."""
from __future__ import annotations

import numpy as np

from matcher.features.sift import extract_local_features, mirror_features, verify_pair
from matcher.index.shared_keypoints import distinctive_inliers, pack_shared, unpack_shared
from matcher.index.version import IndexVersion
from matcher.inputs.images import load_image
from tests.conftest import DEMO


def shared_brands(version: IndexVersion) -> dict[str, set[str]]:
    """brand -> the brands that share keypoints with any of its references."""
    out: dict[str, set[str]] = {}
    for record, by_brand in zip(version.refs.references, version.refs.shared_keypoints):
        out.setdefault(record.brand, set()).update(by_brand)
    return out


def test_sister_brands_share_their_logo_and_others_share_nothing(demo_index):
    version = IndexVersion.open(demo_index)
    sharing = shared_brands(version)
    # the demo catalog holds two Arla cartons and two Tropicana bottles: each pair shares its logo
    assert sharing["Arla-Sour-Milk"] == {"Arla-Medium-Fat-Milk"}
    assert sharing["Arla-Medium-Fat-Milk"] == {"Arla-Sour-Milk"}
    assert sharing["Tropicana-Apple-Juice"] == {"Tropicana-Juice-Smooth"}
    assert sharing["Tropicana-Juice-Smooth"] == {"Tropicana-Apple-Juice"}
    # two yoghurts of different makers look alike but share no keypoints
    assert sharing["Valio-Vanilla-Yoghurt"] == set() and sharing["Yoggi-Vanilla-Yoghurt"] == set()
    for record, by_brand in zip(version.refs.references, version.refs.shared_keypoints):
        assert record.brand not in by_brand
        points = len(version.refs.local_features[version.refs.row_of_id[record.id]])
        assert all(len(k) and k.min() >= 0 and k.max() < points for k in by_brand.values())


def best_per_brand(version: IndexVersion, photo) -> dict[str, tuple[int, int]]:
    """brand -> (most inliers, most distinctive inliers) of a photo over the brand's references."""
    query = extract_local_features(load_image(photo), long_side=320)
    out: dict[str, tuple[int, int]] = {}
    for record in version.refs.references:
        row = version.refs.row_of_id[record.id]
        found = verify_pair(query, version.refs.local_features[row], query_mirrored=mirror_features(query))
        distinct = distinctive_inliers(version.refs.shared_keypoints[row], found.reference_index)
        inliers, best_distinct = out.get(record.brand, (0, 0))
        out[record.brand] = (max(inliers, found.inliers), max(best_distinct, distinct))
    return out


def test_another_photo_of_the_product_keeps_distinctive_inliers_its_sister_does_not(demo_index):
    version = IndexVersion.open(demo_index)
    best = best_per_brand(version, DEMO / "holdout" / "Tropicana-Apple-Juice" / "Tropicana-Apple-Juice_027.jpg")
    own, sister = best["Tropicana-Apple-Juice"], best["Tropicana-Juice-Smooth"]
    assert sister[0] >= 30  # the sister's logo alone gives many inliers...
    assert own[1] >= 3 * sister[1]  # ...but few of them are distinctive
    assert own[0] < 3 * sister[0]  # which raw inlier counts could not tell apart as clearly


def test_distinctive_inliers_ignore_shared_keypoints_of_visible_brands_only():
    shared = {"Sister": np.array([1, 2, 3]), "Cousin": np.array([3, 4])}
    hits = np.array([0, 1, 2, 3, 4, 5])
    assert distinctive_inliers(shared, hits) == 2  # keypoints 0 and 5
    assert distinctive_inliers(shared, hits, hidden_brands={"Sister"}) == 4  # 1, 2 count again; 3 stays shared
    assert distinctive_inliers({}, hits) == 6
    assert distinctive_inliers(shared, np.zeros(0, np.int64)) == 0


def test_shared_keypoints_round_trip_through_flat_arrays():
    shared = [{"B": np.array([0, 7, 9])}, {}, {"A": np.array([2]), "C": np.array([5, 6])}]
    back = unpack_shared(pack_shared(shared), 3)
    assert [sorted(d) for d in back] == [["B"], [], ["A", "C"]]
    assert all(np.array_equal(back[i][b], shared[i][b]) for i in range(3) for b in shared[i])
    assert unpack_shared(pack_shared([{}, {}]), 2) == [{}, {}]


def test_a_brand_is_hidden_only_when_all_its_references_are(demo_index):
    from matcher.cascade.verification import hidden_brands_of

    version = IndexVersion.open(demo_index)
    sour = {r.id for r in version.refs.references if r.brand == "Arla-Sour-Milk"}
    one_tropicana = next(r.id for r in version.refs.references if r.brand == "Tropicana-Apple-Juice")
    assert hidden_brands_of(version.refs, sour | {one_tropicana}) == {"Arla-Sour-Milk"}
    assert hidden_brands_of(version.refs, {one_tropicana}) == frozenset()
