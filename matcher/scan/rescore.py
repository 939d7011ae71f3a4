"""Re-score a past listing without its image, or with only what its image gives short of the CNN: the
cascade's evidence rebuilt from what a scan kept (``rescan.py``'s ``rescored`` and ``remeasured`` paths).

A fresh scan measures a listing the gate passes against a few references (SIFT inliers, colours:
``cascade.verification``); the scan kept those measurements and the listing's hues (``cascade.stored_evidence``)
with its descriptors. Its evidence is rebuilt stage by stage, starting from the global stage redone from the
stored descriptors against the new version:

* likeness (``index.likeness``): the stored raw descriptor against the new version's synthetic listings;
* a listing unlike the catalog's listings is dismissed (unless it may be a multi-photo layout, which the image
  tells): its stored hues against every candidate's;
* one like them: the ``verify_top`` candidates by similarity get their stored inliers; unless one settles it, the
  region search is redone from the stored crops (``restored_regions.py``) and the candidates it ranks first get
  theirs; then colours.

Where a fresh scan would measure what the scan did not (verification against an added reference, hues of a
listing the gate stopped then), the image measures it (``Measure``: ``remeasure.py``); without the image the
listing is read again in full. A multi-photo listing whose panels were searched (``cascade.layout``) is always
read again: its panels' vectors are not stored.

The stored descriptors are float16, so every cosine is known to ~1e-3. Where that could tip a decision of the
cascade (a near tie for the last verified places, for a crop's last neighbour, for the fifth candidate), every way
it can fall is tried, and all must give one decision; where that is not possible (the likeness threshold, the
choice of crops, too many ways), ``restore_evidence`` returns None and the caller reads the image again.
``clear_decision`` does the same for the verdict and a match's brand.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations
from typing import Protocol

import numpy as np

from ..cascade import CascadeSettings, Candidate, ListingEvidence, MatchResult, score_with_feedback
from ..cascade.descriptors import stored_evidence, stored_raw
from ..cascade.evidence import CHANCE_INLIERS, NOT_VERIFIED
from ..cascade.scoring import COPY_PROBABILITY, VERDICT_NO_MATCH
from ..cascade.stored_evidence import Checked, StoredEvidence
from ..cascade.verification import add_hue_agreement, settled
from ..features.colour import MIN_INLIERS
from ..index import ReferenceIndex, Scorer
from .restored_regions import region_variants, same_crops
from .tolerances import Tolerances, logit

TOP_SHARE = 5  # the brand feature ``top5_share`` counts the brands of the first five candidates
MAX_BAND = 6  # candidates tied (within the margin) around the fifth place beyond which no order is tried
_ROUNDING = 1e-5  # log-odds of a score rounded to 6 decimals near the thresholds (0.5)
MAX_VARIANTS = 16  # ways a near tie can fall (verified places, fifth place) beyond which the image is read again


def restore_evidence(refs: ReferenceIndex, scorer: Scorer, ev: ListingEvidence, descriptor: np.ndarray,
                     settings: CascadeSettings, *, added: np.ndarray, added_ids: set[int], stale: set[int],
                     margin: float, measure: Measure | None = None) -> list[ListingEvidence] | None:
    """The evidence a fresh scan past the gate could collect, from ``ev`` (the global stage redone from one
    listing's stored ``descriptor``, (rows, d) float16) and the measurements the scan kept: one ListingEvidence,
    or one per way a float16 near tie for the last verified places could fall (a fresh scan's is one of them);
    None when the stored evidence cannot tell (not kept, a reference never measured, a near tie that brings in a
    new candidate or decides the likeness, or more than MAX_VARIANTS ways).

    added, added_ids : whitened vectors (m, d) and ids of the references new since the scan; stale : ids whose
    distinctive inlier counts changed since (``index.shared_keypoints``); margin : cosine margin of float16
    comparisons
    measure : what the listing's image can measure that the scan did not (``remeasure.py``: verification against
        references it was never verified against, its hues), or None when the image is not at hand
    """
    raw_dim = refs.raw_descriptors.shape[1]
    stored = stored_evidence(descriptor, raw_dim)
    if stored is None and measure is not None:
        stored = StoredEvidence()  # nothing kept (the gate stopped it then): the image measures all it needs
    if stored is None or stored.panels_searched or not settings.verify or refs.index.approximate:
        return None
    threshold = scorer.likeness_threshold
    if len(refs.likeness):
        ev.likeness = float(refs.likeness.of(stored_raw(descriptor[None], raw_dim))[0])
        if threshold is not None and abs(ev.likeness - threshold) < margin:
            return None
    alike = threshold is None or ev.likeness is None or ev.likeness >= threshold
    if not alike:
        if settings.layouts_never_dismissed and not _single_photo(stored, settings, measure):
            return None
        ev.dismissed = True
        return [ev] if _colours(refs, stored, ev, measure) else None
    step = _Step(stored, settings.verify_top, margin, stale, added_ids, measure, settings.mirror_unless_inliers)
    variants = []
    for first in _verify(ev, step) or []:
        if not settings.regions or settled(first, settings.settled_inliers):
            variants.append(first)
            continue
        if not crops_hold(refs, stored, first, descriptor, settings, added=added, added_ids=added_ids, margin=margin):
            return None
        searched = region_variants(refs, first, descriptor, stored.region_hits, added, added_ids, margin)
        for each in searched or [None]:
            found = _verify(each, step) if each is not None else None
            if not found:
                return None
            variants += found
    if not variants or len(variants) > MAX_VARIANTS or not all(_colours(refs, stored, v, measure) for v in variants):
        return None
    return variants


def crops_hold(refs: ReferenceIndex, stored: StoredEvidence, ev: ListingEvidence, descriptor: np.ndarray,
               settings: CascadeSettings, *, added: np.ndarray, added_ids: set[int], margin: float) -> bool:
    """Whether a fresh scan's region search would embed the crops the scan kept: it searched the regions of the
    2 x 2 lattice, and the added references leave the choice of crops as it was (``restored_regions.same_crops``;
    ``ev``: the global stage redone, whose window scores decide it)."""
    return (stored.regions_searched and settings.region_grid == 2
            and same_crops(refs, ev, descriptor, added, added_ids, settings.region_crops_kept, margin))


def score_stored(refs: ReferenceIndex, scorer: Scorer, variants: list[ListingEvidence],
                 tolerances: Tolerances) -> MatchResult | None:
    """``cascade.score_with_feedback`` of evidence rebuilt from float16 descriptors (``restore_evidence``'s
    variants, or the global stage's one), or None when a fresh scan could decide otherwise: the decision must be
    clear (``clear_decision``) and the same for every variant, whichever way the candidates within the cosine
    tolerance of the fifth place are ordered (the brand feature ``top5_share`` counts the brands of the first
    five). The decision is the verdict, and for a match its brand; a ``no_match`` row's closest brand is the
    first variant's, which a near tie of two low scores may show otherwise than a fresh scan."""
    orders = [_top_orders(ev, tolerances.cosine) for ev in variants]
    if not variants or not all(orders) or sum(map(len, orders)) > MAX_VARIANTS:
        return None
    results = [score_with_feedback(refs, scorer, order) for found in orders for order in found]
    first = results[0]
    if any(not clear_decision(r, scorer.threshold, tolerances) or _decision(r) != _decision(first) for r in results):
        return None
    return first


def _decision(result: MatchResult) -> tuple[str, str | None]:
    """What a re-scan must decide as a fresh scan does: the verdict, and the brand of a match."""
    return result.verdict, None if result.verdict == VERDICT_NO_MATCH else result.brand


def _top_orders(ev: ListingEvidence, margin: float) -> list[ListingEvidence]:
    """``ev``, then a copy for each other set of brands the first five candidates could hold if the candidates
    within ``margin`` of the fifth's similarity were ordered otherwise; [] when too many are that close."""
    cs = ev.candidates
    if len(cs) <= TOP_SHARE:
        return [ev]
    fifth = cs[TOP_SHARE - 1].similarity
    band = [k for k, c in enumerate(cs) if abs(c.similarity - fifth) < margin]
    if len({cs[k].brand for k in band}) < 2:
        return [ev]
    if len(band) > MAX_BAND:
        return []
    certain = [k for k in range(TOP_SHARE) if k not in band]
    seen, out = {tuple(sorted(cs[k].brand for k in range(TOP_SHARE)))}, [ev]
    for chosen in combinations(band, TOP_SHARE - len(certain)):
        brands = tuple(sorted(cs[k].brand for k in (*certain, *chosen)))
        if brands in seen:
            continue
        seen.add(brands)
        first = [*certain, *chosen]
        out.append(replace(ev, candidates=[cs[k] for k in first] + [c for k, c in enumerate(cs) if k not in first]))
    return out


def clear_decision(result: MatchResult, threshold: float, tolerances: Tolerances) -> bool:
    """Whether a result scored from float16 evidence gives a fresh scan's verdict, and for a match its brand, in
    log-odds: its best brand score beyond the brand tolerance from the operating threshold, and for a match its
    copy score beyond the copy tolerance from COPY_PROBABILITY and its brand ahead of the next by twice the brand
    tolerance (scores as rounded to 6 decimals: +-5e-7 each)."""
    if not result.matches:
        return True
    best = result.matches[0]
    if abs(logit(best.score) - logit(threshold)) < tolerances.brand_logit + _ROUNDING:
        return False
    if best.score < threshold:
        return True
    if abs(logit(best.copy_score) - logit(COPY_PROBABILITY)) < tolerances.copy_logit + _ROUNDING:
        return False
    if len(result.matches) < 2:
        return True
    gap = logit(max(best.score - 5e-7, 0.0)) - logit(result.matches[1].score + 5e-7)
    return gap >= 2 * tolerances.brand_logit


class Measure(Protocol):
    """What ``restore_evidence`` may ask of a listing's image (``remeasure.ImageMeasurements``)."""

    image_size: tuple[int, int]
    verification: dict

    def plain_inliers(self, ref_ids: list[int]) -> dict[int, int] | None: ...

    def verify(self, ref_ids: list[int], mirror: bool, after_regions: bool) -> dict[int, Checked] | None: ...

    def hues(self) -> tuple[bool, np.ndarray | None]: ...

    def keypoints(self, ref_id: int, inliers: int) -> tuple | None: ...

    def single_photo(self) -> bool: ...


@dataclass(frozen=True)
class _Step:
    """What ``_verify`` needs besides the evidence: the stored measurements, how many candidates are verified,
    the cosine margin, the references whose stored measurements are stale or new, the image (or None) and the
    cascade's ``mirror_unless_inliers``."""

    stored: StoredEvidence
    top: int
    margin: float
    stale: set[int]
    added: set[int]
    measure: Measure | None
    mirror_unless: int


def _verify(ev: ListingEvidence, step: _Step) -> list[ListingEvidence] | None:
    """``cascade.verification.add_verification`` from stored results: the ``top`` candidates by region
    similarity get theirs.

    When every ``added`` candidate ranks below the ``top`` places by ``margin``, a fresh scan ranks the others as
    the scan did, to the last bit: it verifies exactly what the scan verified at this point (before or after the
    region search). Otherwise the candidates within ``margin`` of the last place may or may not be among them in
    a fresh scan: one copy of ``ev`` per way they can fill the places left (those whose measurement adds nothing
    to the features count as one). The candidates verified together at one place are measured on the image
    (``step.measure``) when their stored measurements cannot stand for what a fresh scan finds (``_stored_group``);
    None without an image then, or for too many ways."""
    stored, top, margin = step.stored, step.top, step.margin
    ranked = sorted(ev.candidates, key=lambda c: -c.region_similarity)
    after_regions = ev.regions_searched
    old = [c for c in ranked if c.ref_id not in step.added]
    if stored.verified and len(old) >= top and all(c.region_similarity < old[top - 1].region_similarity - margin
                                                   for c in ranked if c.ref_id in step.added):
        chosen = [c for c in ranked if c.inliers == NOT_VERIFIED and c.ref_id in stored.checked
                  and stored.checked[c.ref_id].after_regions == after_regions]
        found = {c.ref_id: _usable(stored, c.ref_id, step.stale) for c in chosen}
        if any(f is None for f in found.values()):
            return _measured(ev, step, chosen)
        return [_with_found(ev, found)]
    if len(ranked) <= top:
        choices = [ranked]
    else:
        last = ranked[top - 1].region_similarity
        sure = [c for c in ranked if c.region_similarity - last >= margin]
        band = [c for c in ranked if abs(c.region_similarity - last) < margin]
        if step.measure is None and any(c.inliers == NOT_VERIFIED and _usable(stored, c.ref_id, step.stale) is None
                                        for c in band):
            return None
        choices, seen = [], set()
        for chosen in combinations(band, top - len(sure)):
            key = frozenset(c.ref_id for c in chosen if c.inliers != NOT_VERIFIED
                            or not _inert(_usable(stored, c.ref_id, step.stale)))
            if key not in seen:
                seen.add(key)
                choices.append(sure + list(chosen))
            if len(choices) > MAX_VARIANTS:
                return None
    out = []
    for verified in choices:
        group = [c for c in verified if c.inliers == NOT_VERIFIED]
        found = _stored_group(step, group)
        variants = [_with_found(ev, found)] if found is not None else _measured(ev, step, group)
        if variants is None:
            return None
        out += variants
    return out


def _measured(ev: ListingEvidence, step: _Step, group: list[Candidate]) -> list[ListingEvidence] | None:
    """[a copy of ``ev`` whose ``group`` (the candidates a fresh scan verifies together at this step) carries what
    that verification finds]: the stored measurements that hold, the others made on the image (``step.measure``);
    None without an image.

    Whether the cascade tries the mirror image for the group depends on all of it (none verifies with
    ``mirror_unless`` inliers as the listing is): the new references are first verified as the listing is, then
    every one that needs it gets the mirror image too."""
    if step.measure is None:
        return None
    found = {c.ref_id: _usable(step.stored, c.ref_id, step.stale) for c in group}
    missing = [r for r, f in found.items() if f is None]
    plain = step.measure.plain_inliers(missing)
    if plain is None:
        return None
    now = _skips_mirror(step, found, plain)
    missing += _not_holding(step, found, now)
    live = step.measure.verify(missing, mirror=not now, after_regions=ev.regions_searched)
    variant = _with_found(ev, {**found, **live})
    variant.verification.update({r: step.measure.verification[r] for r in live})
    variant.image_size = step.measure.image_size
    return [variant]


def _usable(stored: StoredEvidence, ref_id: int, stale: set[int]) -> Checked | None:
    """The stored measurement against ``ref_id`` that still holds (None: never measured, or its distinctive
    count stale: the reference's shared keypoints changed, and some inliers may now lie on them or off them)."""
    found = stored.checked.get(ref_id)
    if found is None:
        return None
    if found.inliers == 0:  # no inlier, none distinctive, whichever keypoints are shared
        return replace(found, distinctive=0)
    return None if ref_id in stale or found.distinctive == NOT_VERIFIED else found


def _stored_group(step: _Step, group: list[Candidate]) -> dict[int, Checked] | None:
    """The stored measurements of candidates a fresh scan verifies together, when they are what it finds: each
    one usable, and the mirror image tried as then. The cascade skips the mirror image for a whole group when one
    of its references verifies with ``mirror_unless`` inliers as the listing is (``features.sift.verify_against``),
    so a measurement made in a group that tried it (or not) holds in one that does not (or does) only when the
    mirror image did not win (or never: the mirror's count is unknown)."""
    found = {c.ref_id: _usable(step.stored, c.ref_id, step.stale) for c in group}
    if any(f is None for f in found.values()):
        return None
    return None if _not_holding(step, found, _skips_mirror(step, found, {})) else found


def _skips_mirror(step: _Step, found: dict[int, Checked | None], plain: dict[int, int]) -> bool:
    """Whether a fresh scan skips the mirror image for a group: one of its references verifies with
    ``mirror_unless`` inliers as the listing is (``found``: stored measurements, None where missing; ``plain``:
    the missing ones' inliers as the listing is)."""
    limit = step.mirror_unless
    return limit > 0 and (any(_strong(f, limit) for f in found.values() if f is not None)
                          or any(n >= limit for n in plain.values()))


def _not_holding(step: _Step, found: dict[int, Checked | None], now: bool) -> list[int]:
    """The references of ``found`` whose stored measurement is not what a group that skips the mirror image
    (``now``) or tries it finds."""
    then = _strong_then(step.stored, step.mirror_unless)
    return [r for r, f in found.items() if f is not None and not _holds(f, then, now)]


def _strong(found: Checked, limit: int) -> bool:
    """Whether a measurement verified with ``limit`` inliers as the listing is (not mirrored). Exact for a stored
    one too: a mirrored result means the mirror image was tried, so none of its group was that strong."""
    return not found.mirrored and found.inliers >= limit


def _strong_then(stored: StoredEvidence, limit: int) -> dict[bool, bool]:
    """Per step of the scan (verified after the regions or not): whether it skipped the mirror image."""
    return {when: limit > 0 and any(_strong(f, limit) for f in stored.checked.values() if f.after_regions == when)
            for when in (False, True)}


def _holds(found: Checked, then: dict[bool, bool], now: bool) -> bool:
    """Whether a stored measurement is what a group that tries the mirror image (``now`` False) or not finds."""
    return then[found.after_regions] == now or (not then[found.after_regions] and not found.mirrored)


def _with_found(ev: ListingEvidence, found: dict[int, Checked]) -> ListingEvidence:
    """A copy of ``ev`` whose candidates in ``found`` carry those verification results (and colour differences)."""
    variant = ev.branch()
    for c in variant.candidates:
        f = found.get(c.ref_id)
        if f is not None:
            c.inliers, c.distinctive, c.mirrored, c.verified_after_regions = (f.inliers, f.distinctive, f.mirrored,
                                                                              f.after_regions)
            c.colour_distance = f.colour if c.inliers >= MIN_INLIERS else None
    variant.verified = True
    return variant


def _inert(found: Checked | None) -> bool:
    """A stored verification that adds nothing to the features (at most chance inliers, no mirror, no colours):
    a fresh scan that verifies that candidate or not collects the same features."""
    return (found is not None and found.inliers <= CHANCE_INLIERS and found.distinctive <= CHANCE_INLIERS
            and not found.mirrored and found.colour is None)


def _single_photo(stored: StoredEvidence, settings: CascadeSettings, measure: Measure | None) -> bool:
    """Whether the listing is known not to be a multi-photo layout (``cascade.layout``), which a fresh scan never
    dismisses: the scan dismissed it, or its region search looked for panels and found none (found, the listing
    is read again anyway); else its image tells."""
    if stored.dismissed or (stored.regions_searched and settings.layout_panels):
        return True
    return measure is not None and measure.single_photo()


def _colours(refs: ReferenceIndex, stored: StoredEvidence, ev: ListingEvidence, measure: Measure | None) -> bool:
    """``cascade.verification.add_colour_check``: the hues from those the scan stored, or from the image; the
    colour differences came with the verification results (``_with_found``). False when neither has hues."""
    if not refs.colour_check:
        return True
    measured, hues = (True, stored.hues) if stored.hues_measured else measure.hues() if measure else (False, None)
    if not measured:
        return False
    add_hue_agreement(refs, hues, ev)
    return True
