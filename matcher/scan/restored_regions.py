"""The region search of a re-scan, from the crops a scan kept (``rescore.py``): whether a fresh scan would embed
the same crops, and which references they would bring up against a newer index version.

A scan keeps the vectors of the crops it embedded (``cascade.descriptors``) and the references they brought up
(``cascade.stored_evidence``). Adding references changes neither the crops' vectors nor how the old references
rank for a crop; it only adds references that may outrank them. The stored vectors are float16, so a cosine is
known to within ``margin``: where that could tip a choice, every way it can fall is tried or the image is read
again.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from ..cascade import ListingEvidence
from ..cascade.descriptors import WINDOW_ROWS, stored_crops
from ..cascade.regions import PER_REGION, add_region_hits
from ..index import ReferenceIndex

BEYOND = 4  # neighbours fetched past a crop's last place, to see every near tie for it
MAX_DOUBTS = 2  # references that a crop may or may not bring up beyond which the image is read again


def same_crops(refs: ReferenceIndex, ev: ListingEvidence, descriptor: np.ndarray, added: np.ndarray,
                added_ids: set[int], kept: int, margin: float) -> bool:
    """Whether the region search embeds the crops it embedded then: the ``kept`` feature-map windows with the best
    cosine to a reference (``cascade.regions``) are the same with the added references as without. Either every
    window's best reference is an old one, as then to the last bit (the added ones stay ``margin`` below it), or
    both rankings put the same windows first, each clear of the rest by ``margin``."""
    scores = np.asarray(ev.window_scores, np.float64)
    if not len(scores) or not len(added):
        return len(scores) > 0
    windows = np.ascontiguousarray(descriptor[WINDOW_ROWS], np.float32)
    if np.all((windows @ added.T).max(axis=1) < scores - margin):
        return True
    sims, ids = refs.index.search(windows, len(added_ids) + 1)
    then = np.asarray([row_sims[[r not in added_ids for r in row_ids.tolist()]][0]
                       for row_sims, row_ids in zip(sims, ids)], np.float64)
    first = _clear_first(then, kept, margin)
    return first is not None and first == _clear_first(scores, kept, margin)


def _clear_first(scores: np.ndarray, kept: int, margin: float) -> frozenset[int] | None:
    """The positions of the ``kept`` highest ``scores`` when they lead the rest by ``margin``, else None."""
    if len(scores) <= kept:
        return frozenset(range(len(scores)))
    order = np.argsort(-scores, kind="stable")
    return frozenset(order[:kept].tolist()) if scores[order[kept - 1]] - scores[order[kept]] >= margin else None


def region_variants(refs: ReferenceIndex, ev: ListingEvidence, descriptor: np.ndarray, region_hits: tuple[int, ...],
                    added: np.ndarray, added_ids: set[int], margin: float) -> list[ListingEvidence] | None:
    """``cascade.regions.add_region_evidence`` from the stored crop vectors: each crop's ``PER_REGION`` nearest
    references join the candidates; one copy of ``ev`` per set of them a fresh scan may bring up.

    When the added references stay ``margin`` below every crop's last place, the crops bring up what they brought
    up then (``region_hits``, as the scan kept them). Otherwise the references near a crop's last place (within
    ``margin``) may or may not come up: one copy per subset of those that would be new candidates (an old
    reference no crop brought up then cannot come up now), None for more than ``MAX_DOUBTS`` of them."""
    crops = stored_crops(descriptor)
    if not len(crops):
        return None
    sims, ids = refs.index.search(np.ascontiguousarray(crops), PER_REGION + len(added_ids) + BEYOND)
    if np.any(ids[:, :PER_REGION] < 0):
        return None
    known = {c.ref_id for c in ev.candidates}
    if region_hits:
        old_last = [row_sims[[r not in added_ids for r in row_ids.tolist()]][PER_REGION - 1]
                    for row_sims, row_ids in zip(sims, ids)]
        if not len(added) or np.all((crops @ added.T).max(axis=1) < np.asarray(old_last) - margin):
            return [_add_region_candidates(refs, ev, descriptor, crops, set(region_hits))]
    sims, ids = sims[:, :PER_REGION + BEYOND], ids[:, :PER_REGION + BEYOND]
    sure, doubtful = set(), set()
    for row_sims, row_ids in zip(sims, ids):
        last, next_ = row_sims[PER_REGION - 1], row_sims[PER_REGION]
        if row_ids[-1] >= 0 and row_sims[-1] >= last - margin:
            return None  # more near-ties than were fetched
        for k, (s, r) in enumerate(zip(row_sims.tolist(), row_ids.tolist())):
            if k < PER_REGION and s - next_ >= margin:
                sure.add(int(r))
            elif r >= 0 and s >= last - margin:
                doubtful.add(int(r))
    possible = doubtful - sure - known
    if region_hits:
        possible &= added_ids | set(region_hits)
    if len(possible) > MAX_DOUBTS:
        return None
    return [_add_region_candidates(refs, ev, descriptor, crops, sure | set(chosen))
            for size in range(len(possible) + 1) for chosen in combinations(sorted(possible), size)]


def _add_region_candidates(refs: ReferenceIndex, ev: ListingEvidence, descriptor: np.ndarray, crops: np.ndarray,
                           hits: set[int]) -> ListingEvidence:
    """A copy of ``ev`` with what ``cascade.regions.add_region_evidence`` records of the crops and the references
    they brought up."""
    searched = ev.branch()
    add_region_hits(refs, searched, crops, hits, np.asarray(descriptor[0], np.float32))
    searched.regions_searched, searched.region_vectors = True, crops
    return searched
