"""The re-scan's keep rules on hand-made arrays (no CNN): the stored descriptor's layout, which references'
shared keypoints changed between two versions, and when new synthetic listings can flip the likeness decision."""
from __future__ import annotations

import numpy as np

from matcher.cascade.descriptors import (CROPS, descriptor_shape, pack_descriptor, stored_crops, stored_evidence,
                                         stored_raw, with_evidence)
from matcher.cascade.stored_evidence import MAX_VERIFIED, SLOTS, Checked, StoredEvidence
from matcher.features.colour import HUE_BINS, ColourDifference
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
    evidence_rows = -(-SLOTS // d)
    assert packed.dtype == np.float16
    assert packed.shape == descriptor_shape(d, raw_dim) == (1 + WINDOWS + CROPS + 3 + evidence_rows, d)
    np.testing.assert_allclose(packed[0], vector, atol=1e-3)
    np.testing.assert_allclose(stored_crops(packed), crops, atol=1e-3)
    np.testing.assert_allclose(stored_raw(packed[None], raw_dim)[0], raw, atol=1e-3)
    assert len(stored_crops(pack_descriptor(vector, windows, None, raw))) == 0  # regions not searched
    assert len(stored_crops(pack_descriptor(vector, windows, _unit(rng, CROPS + 5, d), raw))) == 0  # do not fit
    assert stored_evidence(packed, raw_dim) is None  # the expensive stages did not run


def test_stored_evidence_round_trips_exactly_through_float16():
    """Counts and ids beyond float16's whole numbers, colour differences and hues come back as they were (to
    ~1e-7), through the descriptor's float16 rows and a float32 copy of them."""
    rng = np.random.default_rng(1)
    d, raw_dim = 16, 40
    hues = rng.random(HUE_BINS)
    hues /= hues.sum()
    checked = {5: Checked(-1, -1, False, None), 70_001: Checked(123, 40, True, ColourDifference(31.7, 88.25, 0.1234), True),
               2048: Checked(2047, 2049, False, ColourDifference(0.0, 255.9, 1.0))}
    kept = StoredEvidence(dismissed=False, verified=True, regions_searched=True, hues_measured=True, hues=hues,
                          checked=checked, region_hits=(3, 2048, 4_000_000), panels_searched=True)
    packed = pack_descriptor(_unit(rng, 1, d)[0], _unit(rng, WINDOWS, d), None, _unit(rng, 1, raw_dim)[0], kept)
    back = stored_evidence(packed.astype(np.float32), raw_dim)
    assert (back.dismissed, back.verified, back.regions_searched, back.hues_measured, back.panels_searched) == \
        (False, True, True, True, True)
    np.testing.assert_allclose(back.hues, hues, rtol=0, atol=1e-7)  # remainders below 6e-5 are float16 subnormals
    assert back.checked.keys() == checked.keys() and back.region_hits == (3, 2048, 4_000_000)
    for ref_id, found in checked.items():
        got = back.checked[ref_id]
        assert (got.inliers, got.distinctive, got.mirrored, got.after_regions) == \
            (found.inliers, found.distinctive, found.mirrored, found.after_regions)
        if found.colour is None:
            assert got.colour is None
        else:
            np.testing.assert_allclose(got.colour, found.colour, rtol=1e-6)
    grey = stored_evidence(pack_descriptor(_unit(rng, 1, d)[0], _unit(rng, WINDOWS, d), None,
                                           _unit(rng, 1, raw_dim)[0], StoredEvidence(dismissed=True,
                                                                                     hues_measured=True)), raw_dim)
    assert grey.dismissed and grey.hues_measured and grey.hues is None and not grey.checked
    too_many = StoredEvidence(verified=True, checked={i: Checked(1, 1, False, None) for i in range(MAX_VERIFIED + 1)})
    assert stored_evidence(with_evidence(packed, raw_dim, too_many), raw_dim) is None  # does not fit: none kept
    older = packed[:1 + WINDOWS + CROPS + 3]  # a format-2 descriptor: no evidence rows
    assert stored_evidence(older, raw_dim) is None
    padded = with_evidence(older, raw_dim, kept)
    assert padded.shape == packed.shape and stored_evidence(padded, raw_dim).checked.keys() == checked.keys()


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
