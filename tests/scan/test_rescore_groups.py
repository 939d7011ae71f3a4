"""A re-scan reuses a stored SIFT measurement only where a fresh scan would find the same: the cascade verifies a
step's candidates together and tries the listing's mirror image for all of them or none (``mirror_unless``), so
a measurement made in one group holds in another only when the mirror image was tried alike or did not win."""
from __future__ import annotations

import numpy as np

from matcher.cascade import CascadeSettings, Candidate, ListingEvidence
from matcher.cascade.evidence import NOT_VERIFIED
from matcher.cascade.stored_evidence import Checked, StoredEvidence
from matcher.scan.remeasure import ImageWanted
from matcher.scan.rescore import _measured, _single_photo, _Step, _stored_group
from matcher.scan.restored_regions import _clear_first

MIRROR_UNLESS = 40


def _step(checked: dict[int, Checked], stale: frozenset[int] = frozenset(), measure=None) -> _Step:
    stored = StoredEvidence(verified=True, checked=checked)
    return _Step(stored, top=6, margin=0.002, stale=set(stale), added=set(), measure=measure,
                 mirror_unless=MIRROR_UNLESS)


class FakeImage:
    """An image whose plain inlier counts are given; records what it is asked to verify."""

    image_size = (640, 480)

    def __init__(self, plain: dict[int, int]):
        self.plain, self.asked, self.verification = plain, [], {}

    def plain_inliers(self, ref_ids):
        return {r: self.plain[r] for r in ref_ids}

    def verify(self, ref_ids, mirror, after_regions):
        self.asked.append((sorted(ref_ids), mirror))
        self.verification.update({r: None for r in ref_ids})
        return {r: Checked(self.plain[r], self.plain[r], False, None, after_regions) for r in ref_ids}


def _group(*ref_ids: int) -> list[Candidate]:
    return [Candidate(r, "brand", 0.5, 0.5) for r in ref_ids]


def test_a_group_measured_alike_reuses_its_stored_results():
    checked = {1: Checked(12, 10, True, None), 2: Checked(8, 8, False, None)}  # the mirror image was tried
    assert _stored_group(_step(checked), _group(1, 2)) == checked
    assert _stored_group(_step(checked), _group(2)) == {2: checked[2]}


def test_a_reference_never_measured_or_stale_needs_the_image():
    checked = {1: Checked(12, 10, True, None), 2: Checked(8, NOT_VERIFIED, False, None)}
    assert _stored_group(_step(checked), _group(1, 3)) is None  # 3 was never verified
    assert _stored_group(_step(checked), _group(2)) is None  # its distinctive count was marked stale
    assert _stored_group(_step(checked, frozenset({1})), _group(1)) is None
    nothing = {5: Checked(0, NOT_VERIFIED, False, None)}  # no inlier: none distinctive, whatever is shared now
    assert _stored_group(_step(nothing, frozenset({5})), _group(5)) == {5: Checked(0, 0, False, None)}


def test_a_group_that_would_try_the_mirror_image_where_the_scan_did_not_needs_the_image():
    # then: reference 1 verified with 50 inliers as the listing is, so the mirror image was skipped for 1 and 2
    checked = {1: Checked(50, 45, False, None), 2: Checked(8, 8, False, None)}
    assert _stored_group(_step(checked), _group(1, 2)) == checked
    assert _stored_group(_step(checked), _group(2)) is None  # alone, 2 gets the mirror image tried: unknown count


def test_a_mirrored_result_in_a_group_that_would_skip_the_mirror_image_needs_the_image():
    before = {1: Checked(12, 10, True, None, after_regions=False)}  # the mirror image won, before the regions
    after = {4: Checked(45, 40, False, None, after_regions=True)}  # 45 inliers: no mirror image after them
    step = _step({**before, **after})
    assert _stored_group(step, _group(4)) == after
    assert _stored_group(step, _group(1, 4)) is None  # together, the mirror image is skipped: 1's plain count?
    plain_won = {1: Checked(12, 10, False, None, after_regions=False), **after}
    assert _stored_group(_step(plain_won), _group(1, 4)) == plain_won  # the plain count stands either way


def test_crops_are_the_same_only_when_the_best_windows_lead_clearly():
    assert _clear_first(np.array([0.9, 0.8, 0.7, 0.6, 0.5]), 3, 0.01) == frozenset({0, 1, 2})
    assert _clear_first(np.array([0.5, 0.9, 0.6, 0.8, 0.7]), 3, 0.01) == frozenset({1, 3, 4})
    assert _clear_first(np.array([0.9, 0.8, 0.7, 0.695, 0.5]), 3, 0.01) is None


def test_the_image_verifies_only_the_new_reference_and_tries_the_mirror_as_the_group_would():
    checked = {1: Checked(12, 10, False, None), 2: Checked(8, 8, False, None)}  # mirror tried then, it did not win
    evidence = ListingEvidence(_group(1, 2, 3), 0.1)
    weak = FakeImage({3: 5})
    variant, = _measured(evidence, _step(checked, measure=weak), _group(1, 2, 3))
    assert weak.asked == [([3], True)]  # nobody verifies with 40 as it is: the group tries the mirror image
    assert [c.inliers for c in variant.candidates] == [12, 8, 5] and variant.image_size == (640, 480)
    strong = FakeImage({3: 60})
    _measured(evidence, _step(checked, measure=strong), _group(1, 2, 3))
    assert strong.asked == [([3], False)]  # 3 verifies with 60: no mirror image for the group; 1 and 2 hold
    won = {1: Checked(12, 10, True, None), 2: Checked(8, 8, False, None)}  # the mirror image won for 1 then
    again = FakeImage({1: 9, 3: 60})
    _measured(evidence, _step(won, measure=again), _group(1, 2, 3))
    assert again.asked == [([1, 3], False)]  # 1 as it is is unknown: measured too
    assert _measured(evidence, _step(checked), _group(1, 2, 3)) is None  # no image at hand


def test_a_listing_dismissed_now_needs_its_image_unless_the_scan_looked_for_a_layout():
    """A fresh scan never dismisses a multi-photo layout (``CascadeSettings.layouts_never_dismissed``): a re-scan
    that would dismiss a listing must know it is one photo."""
    settings = CascadeSettings()
    assert _single_photo(StoredEvidence(dismissed=True), settings, None)  # the scan checked before dismissing
    assert _single_photo(StoredEvidence(verified=True, regions_searched=True), settings, None)  # panels: none
    settled = StoredEvidence(verified=True)  # settled before the region search: never looked
    probe = ImageWanted()
    assert not _single_photo(settled, settings, probe) and probe.wanted
    assert not _single_photo(settled, settings, None)
