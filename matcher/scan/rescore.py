"""Re-score a past listing without its image: the cascade's evidence rebuilt from what a scan kept
(``rescan.py``'s ``rescored`` path).

A fresh scan measures a listing the gate passes against a few references (SIFT inliers, colours:
``cascade.verification``); the scan kept those measurements and the listing's hues (``cascade.stored_evidence``)
with its descriptors. When every reference a fresh scan would measure was measured then, its evidence is rebuilt
stage by stage, starting from the global stage redone from the stored descriptors against the new version:

* likeness (``index.likeness``): the stored raw descriptor against the new version's synthetic listings;
* a listing unlike the catalog's listings is dismissed: its stored hues against every candidate's;
* one like them: the ``verify_top`` candidates by similarity get their stored inliers; unless one settles it, the
  region search is redone from the stored crops (the same crops the scan embedded: the added references leave
  every feature-map window's best cosine as it was) and the candidates it ranks first get theirs; then colours.

A multi-photo listing whose panels were searched (``cascade.layout``) is always read again: its panels' vectors
are not stored. The stored descriptors are float16, so every cosine is known to ~1e-3. Wherever that could tip a decision of the
cascade (the likeness threshold, a near tie for the last verified place, for a crop's last neighbour or for the
choice of crops), ``restore_evidence`` returns None and the caller reads the image again; ``clear_decision`` does
the same for the verdict and the best brand.
"""
from __future__ import annotations

from copy import deepcopy
from dataclasses import replace
from itertools import combinations

import numpy as np

from ..cascade import CascadeSettings, Candidate, ListingEvidence, MatchResult, score_with_feedback
from ..cascade.descriptors import WINDOW_ROWS, stored_crops, stored_evidence, stored_raw
from ..cascade.evidence import CHANCE_INLIERS, NOT_VERIFIED
from ..cascade.regions import PER_REGION, add_region_hits
from ..cascade.scoring import COPY_PROBABILITY
from ..cascade.stored_evidence import StoredEvidence
from ..cascade.verification import add_hue_agreement, settled
from ..features.colour import MIN_INLIERS
from ..index import ReferenceIndex, Scorer
from .tolerances import Tolerances, logit

TOP_SHARE = 5  # the brand feature ``top5_share`` counts the brands of the first five candidates
BEYOND = 4  # neighbours fetched past a crop's last place, to see every near tie for it
MAX_BAND = 6  # candidates tied (within the margin) around the fifth place beyond which no order is tried
_ROUNDING = 1e-5  # log-odds of a score rounded to 6 decimals near the thresholds (0.5)
MAX_VARIANTS = 16  # ways a near tie can fall (verified places, fifth place) beyond which the image is read again


def restore_evidence(refs: ReferenceIndex, scorer: Scorer, ev: ListingEvidence, descriptor: np.ndarray,
                     settings: CascadeSettings, *, added: np.ndarray, added_ids: set[int], stale: set[int],
                     margin: float) -> list[ListingEvidence] | None:
    """The evidence a fresh scan past the gate could collect, from ``ev`` (the global stage redone from one
    listing's stored ``descriptor``, (rows, d) float16) and the measurements the scan kept: one ListingEvidence,
    or one per way a float16 near tie for the last verified places could fall (a fresh scan's is one of them);
    None when the stored evidence cannot tell (not kept, a reference never measured, a near tie that brings in a
    new candidate or decides the likeness, or more than MAX_VARIANTS ways).

    added, added_ids : whitened vectors (m, d) and ids of the references new since the scan; stale : ids whose
    distinctive inlier counts changed since (``index.shared_keypoints``); margin : cosine margin of float16
    comparisons
    """
    raw_dim = refs.raw_descriptors.shape[1]
    stored = stored_evidence(descriptor, raw_dim)
    if stored is None or stored.panels_searched or not settings.verify or refs.index.approximate:
        return None
    threshold = scorer.likeness_threshold
    if len(refs.likeness):
        ev.likeness = float(refs.likeness.of(stored_raw(descriptor[None], raw_dim))[0])
        if threshold is not None and abs(ev.likeness - threshold) < margin:
            return None
    alike = threshold is None or ev.likeness is None or ev.likeness >= threshold
    if not alike:
        ev.dismissed = True
        return [ev] if _colours(refs, stored, ev) else None
    if not stored.verified:
        return None
    variants = []
    for first in _verify(ev, stored, settings.verify_top, margin, stale, added_ids) or []:
        if not settings.regions or settled(first, settings.settled_inliers):
            variants.append(first)
            continue
        if not (stored.regions_searched and settings.region_grid == 2 and _same_crops(first, descriptor, added, margin)
                and _regions(refs, first, descriptor, stored, added, added_ids, margin)):
            return None
        found = _verify(first, stored, settings.verify_top, margin, stale, added_ids)
        if not found:
            return None
        variants += found
    if not variants or len(variants) > MAX_VARIANTS or not all(_colours(refs, stored, v) for v in variants):
        return None
    return variants


def score_stored(refs: ReferenceIndex, scorer: Scorer, variants: list[ListingEvidence],
                 tolerances: Tolerances) -> MatchResult | None:
    """``cascade.score_with_feedback`` of evidence rebuilt from float16 descriptors (``restore_evidence``'s
    variants, or the global stage's one), or None when a fresh scan could decide otherwise: the decision must be
    clear (``clear_decision``) and the same for every variant, whichever way the candidates within the cosine
    tolerance of the fifth place are ordered (the brand feature ``top5_share`` counts the brands of the first
    five)."""
    orders = [_top_orders(ev, tolerances.cosine) for ev in variants]
    if not variants or not all(orders) or sum(map(len, orders)) > MAX_VARIANTS:
        return None
    results = [score_with_feedback(refs, scorer, order) for found in orders for order in found]
    first = results[0]
    if any(not clear_decision(r, scorer.threshold, tolerances)
           or (r.verdict, r.brand) != (first.verdict, first.brand) for r in results):
        return None
    return first


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
    """Whether a result scored from float16 evidence gives a fresh scan's verdict and best brand, in log-odds: its
    best brand score beyond the brand tolerance from the operating threshold, its copy score (when a match)
    beyond the copy tolerance from COPY_PROBABILITY, and the best brand ahead of the next by twice the brand
    tolerance (scores as rounded to 6 decimals: +-5e-7 each)."""
    if not result.matches:
        return True
    best = result.matches[0]
    if abs(logit(best.score) - logit(threshold)) < tolerances.brand_logit + _ROUNDING:
        return False
    if best.score >= threshold and abs(logit(best.copy_score) - logit(COPY_PROBABILITY)) < \
            tolerances.copy_logit + _ROUNDING:
        return False
    if len(result.matches) < 2:
        return True
    gap = logit(max(best.score - 5e-7, 0.0)) - logit(result.matches[1].score + 5e-7)
    return gap >= 2 * tolerances.brand_logit


def _verify(ev: ListingEvidence, stored: StoredEvidence, top: int, margin: float, stale: set[int],
            added: set[int]) -> list[ListingEvidence] | None:
    """``cascade.verification.add_verification`` from stored results: the ``top`` candidates by region
    similarity get theirs.

    When every ``added`` candidate ranks below the ``top`` places by ``margin``, a fresh scan ranks the others as
    the scan did, to the last bit: it verifies exactly what the scan verified at this point (before or after the
    region search). Otherwise the candidates within ``margin`` of the last place may or may not be among them in
    a fresh scan: one copy of ``ev`` per way they can fill the places left (those whose measurement adds nothing
    to the features count as one); None when one of them was never measured, or for too many ways."""
    ranked = sorted(ev.candidates, key=lambda c: -c.region_similarity)
    after_regions = ev.regions_searched
    old = [c for c in ranked if c.ref_id not in added]
    if len(old) >= top and all(c.region_similarity < old[top - 1].region_similarity - margin
                               for c in ranked if c.ref_id in added):
        chosen = [c for c in ranked if c.inliers == NOT_VERIFIED and c.ref_id in stored.checked
                  and stored.checked[c.ref_id].after_regions == after_regions]
        variant = _with_stored(ev, stored, chosen, stale)
        return None if variant is None else [variant]
    if len(ranked) <= top:
        choices = [ranked]
    else:
        last = ranked[top - 1].region_similarity
        sure = [c for c in ranked if c.region_similarity - last >= margin]
        band = [c for c in ranked if abs(c.region_similarity - last) < margin]
        if any(c.inliers == NOT_VERIFIED and (c.ref_id not in stored.checked or c.ref_id in stale) for c in band):
            return None
        choices, seen = [], set()
        for chosen in combinations(band, top - len(sure)):
            key = frozenset(c.ref_id for c in chosen if c.inliers != NOT_VERIFIED
                            or not _inert(stored.checked.get(c.ref_id)))
            if key not in seen:
                seen.add(key)
                choices.append(sure + list(chosen))
            if len(choices) > MAX_VARIANTS:
                return None
    out = []
    for verified in choices:
        variant = _with_stored(ev, stored, [c for c in verified if c.inliers == NOT_VERIFIED], stale)
        if variant is None:
            return None
        out.append(variant)
    return out


def _with_stored(ev: ListingEvidence, stored: StoredEvidence, chosen: list[Candidate],
                 stale: set[int]) -> ListingEvidence | None:
    """A copy of ``ev`` whose ``chosen`` candidates carry their stored verification, or None when one was never
    measured or its distinctive count is stale."""
    found = {c.ref_id: stored.checked.get(c.ref_id) for c in chosen}
    if any(f is None or r in stale for r, f in found.items()):
        return None
    variant = deepcopy(ev)
    for c in variant.candidates:
        if c.ref_id in found:
            f = found[c.ref_id]
            c.inliers, c.distinctive, c.mirrored, c.verified_after_regions = (f.inliers, f.distinctive, f.mirrored,
                                                                              f.after_regions)
    variant.verified = True
    return variant


def _inert(found) -> bool:
    """A stored verification that adds nothing to the features (at most chance inliers, no mirror, no colours):
    a fresh scan that verifies that candidate or not collects the same features."""
    return (found.inliers <= CHANCE_INLIERS and found.distinctive <= CHANCE_INLIERS and not found.mirrored
            and found.colour is None)


def _same_crops(ev: ListingEvidence, descriptor: np.ndarray, added: np.ndarray, margin: float) -> bool:
    """Whether the region search embeds the crops it embedded then: every window's best cosine is an old
    reference's, as then to the last bit (the added ones stay ``margin`` below it), so the windows rank as
    they did."""
    scores = np.asarray(ev.window_scores, np.float64)
    if not len(scores) or not len(added):
        return len(scores) > 0
    windows = np.asarray(descriptor[WINDOW_ROWS], np.float32) @ added.T
    return bool(np.all(windows.max(axis=1) < scores - margin))


def _regions(refs: ReferenceIndex, ev: ListingEvidence, descriptor: np.ndarray, stored: StoredEvidence,
             added: np.ndarray, added_ids: set[int], margin: float) -> bool:
    """``cascade.regions.add_region_evidence`` from the stored crop vectors: each crop's ``PER_REGION`` nearest
    references join the candidates. When the added references stay ``margin`` below every crop's last place,
    the crops bring up what they brought up then (``stored.region_hits``). Otherwise False when a reference within
    ``margin`` of a crop's last place (a fresh scan may or may not bring it up) would be a new candidate."""
    crops = stored_crops(descriptor)
    if not len(crops):
        return False
    sims, ids = refs.index.search(np.ascontiguousarray(crops), PER_REGION + len(added_ids) + BEYOND)
    if np.any(ids[:, :PER_REGION] < 0):
        return False
    known = {c.ref_id for c in ev.candidates}
    if stored.region_hits:
        old_last = [row_sims[[r not in added_ids for r in row_ids.tolist()]][PER_REGION - 1]
                    for row_sims, row_ids in zip(sims, ids)]
        if not len(added) or np.all((crops @ added.T).max(axis=1) < np.asarray(old_last) - margin):
            _add_region_candidates(refs, ev, descriptor, crops, set(stored.region_hits))
            return True
    sims, ids = sims[:, :PER_REGION + BEYOND], ids[:, :PER_REGION + BEYOND]
    sure, doubtful = set(), set()
    for row_sims, row_ids in zip(sims, ids):
        last, next_ = row_sims[PER_REGION - 1], row_sims[PER_REGION]
        if row_ids[-1] >= 0 and row_sims[-1] >= last - margin:
            return False  # more near-ties than were fetched
        for k, (s, r) in enumerate(zip(row_sims.tolist(), row_ids.tolist())):
            if k < PER_REGION and s - next_ >= margin:
                sure.add(int(r))
            elif r >= 0 and s >= last - margin:
                doubtful.add(int(r))
    if doubtful - sure - known:
        return False
    _add_region_candidates(refs, ev, descriptor, crops, sure)
    return True


def _add_region_candidates(refs: ReferenceIndex, ev: ListingEvidence, descriptor: np.ndarray, crops: np.ndarray,
                           hits: set[int]) -> None:
    """What ``cascade.regions.add_region_evidence`` records of the crops and the references they brought up."""
    add_region_hits(refs, ev, crops, hits, np.asarray(descriptor[0], np.float32))
    ev.regions_searched, ev.region_vectors = True, crops


def _colours(refs: ReferenceIndex, stored: StoredEvidence, ev: ListingEvidence) -> bool:
    """``cascade.verification.add_colour_check`` from the stored hues and colour differences; False when the
    scan did not measure them."""
    if not refs.colour_check:
        return True
    if not stored.hues_measured:
        return False
    add_hue_agreement(refs, stored.hues, ev)
    for c in ev.candidates:
        if c.inliers >= MIN_INLIERS:
            c.colour_distance = stored.checked[c.ref_id].colour
    return True


