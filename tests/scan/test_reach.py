"""The re-scan's keep rules on hand-made arrays (no CNN): the stored descriptor's layout, which references'
shared keypoints changed between two versions, and when new synthetic listings can flip the likeness decision."""
from __future__ import annotations

import numpy as np

from matcher.cascade.descriptors import CROPS, descriptor_shape, pack_descriptor, stored_crops, stored_raw
from matcher.features.pooling import WINDOWS
from matcher.scan.reach import alike_unchanged, shared_keypoints_changed


def _unit(rng, n, d):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_descriptor_layout_round_trips_crops_and_raw():
    rng = np.random.default_rng(0)
    d, raw_dim = 16, 40  # raw not a whole number of rows: zero-padded
    vector, windows, crops, raw = _unit(rng, 1, d)[0], _unit(rng, WINDOWS, d), _unit(rng, 3, d), _unit(rng, 1, raw_dim)[0]
    packed = pack_descriptor(vector, windows, crops, raw)
    assert packed.dtype == np.float16 and packed.shape == descriptor_shape(d, raw_dim) == (1 + WINDOWS + CROPS + 3, d)
    np.testing.assert_allclose(packed[0], vector, atol=1e-3)
    np.testing.assert_allclose(stored_crops(packed), crops, atol=1e-3)
    np.testing.assert_allclose(stored_raw(packed[None], raw_dim)[0], raw, atol=1e-3)
    assert len(stored_crops(pack_descriptor(vector, windows, None, raw))) == 0  # regions not searched
    assert len(stored_crops(pack_descriptor(vector, windows, _unit(rng, CROPS + 5, d), raw))) == 0  # do not fit


def test_shared_keypoints_changed_compares_by_reference_id():
    old = [{"A": np.array([1, 2])}, {}, {"B": np.array([5])}]
    old_ids = [10, 11, 12]
    # the new version lists the references in another order, adds 13, recomputes: 11 gains keypoints, 12 is gone
    new = [{}, {"A": np.array([1, 2])}, {"C": np.array([0])}, {"C": np.array([7])}]
    new_row_of_id = {13: 0, 10: 1, 11: 2}
    assert shared_keypoints_changed(old, old_ids, new, new_row_of_id) == {11, 12}
    assert shared_keypoints_changed(old, old_ids, [dict(s) for s in old], {10: 0, 11: 1, 12: 2}) == set()
    moved = [{"A": np.array([1, 3])}, {}, {"B": np.array([5])}]
    assert shared_keypoints_changed(old, old_ids, moved, {10: 0, 11: 1, 12: 2}) == {10}


def test_alike_unchanged_only_when_the_decision_cannot_flip():
    threshold, margin = 0.5, 0.01
    assert alike_unchanged(0.9, 0.95, threshold, margin)  # alike before, alike after
    assert alike_unchanged(0.2, 0.3, threshold, margin)  # the new listings stay below the threshold
    assert alike_unchanged(0.52, 0.6, threshold, margin)  # alike beyond the margin already
    assert not alike_unchanged(0.505, 0.502, threshold, margin)  # within float16 reach of the threshold
    assert not alike_unchanged(0.3, 0.6, threshold, margin)  # the new listings make it alike: read again
    assert not alike_unchanged(0.495, 0.502, threshold, margin)  # too close to call
