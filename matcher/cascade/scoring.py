"""Scoring stage: evidence -> calibrated brand and copy scores (the index's ``Scorer``) -> the verdict.

- brand score: P(the listing shows this brand's product: an edited copy or another photo of it);
- copy score: P(the listing is an edited copy of this very reference photo).

The *global* models read the cheap global features (listings the gate stopped); the *full* models read every
feature (listings verified, or dismissed as unlike the catalog's listings).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ImageError
from ..features.sift import Verification
from ..index import ReferenceIndex, Scorer
from .evidence import ListingEvidence, brand_feature_rows, copy_feature_rows

VERDICT_COPY = "copy"
VERDICT_SAME_PRODUCT = "same_product"
VERDICT_NO_MATCH = "no_match"
COPY_PROBABILITY = 0.5  # a match whose copy score reaches this is an edited copy, else another photo of the product
KEYPOINTS_SHOWN = 32  # verified inlier pairs a match carries for reports


def verdict(brand_score: float, copy_score: float, threshold: float) -> str:
    """copy / same_product / no_match from the best brand's scores and the operating threshold."""
    if brand_score < threshold:
        return VERDICT_NO_MATCH
    return VERDICT_COPY if copy_score >= COPY_PROBABILITY else VERDICT_SAME_PRODUCT


@dataclass(frozen=True)
class Match:
    """One candidate brand of a listing: its best reference photo and calibrated scores (probabilities in
    [0, 1], rounded to 6 decimals)."""

    brand: str
    reference: str  # path relative to the catalog root
    ref_id: int  # the reference's id in the index
    score: float  # P(the listing shows this brand's product)
    copy_score: float  # P(the listing is an edited copy of ``reference``)
    similarity: float  # cosine of whitened global descriptors
    inliers: int  # SIFT inliers with ``reference``; -1 when not verified
    # verified inlier pairs (listing x, y, reference x, y), each normalised to [0, 1] by its image's size
    keypoints: tuple[tuple[float, float, float, float], ...] = ()


@dataclass(frozen=True)
class MatchResult:
    """What the engine says about one listing image.

    status : ``ok`` or an error kind (``not_found``, ``unreadable``, ``not_an_image``, ``too_large``, ...)
    verdict : ``copy``, ``same_product`` or ``no_match``
    brand, reference, score : the best match (None / 0.0 when there is none or the image failed)
    matches : candidate brands, best first
    checks : how far the cascade went: ``full`` (SIFT verification, and region search unless a candidate verified
        conclusively), ``global`` (stopped by the gate after the cheap global stage), ``dismissed`` (unlike any
        listing of the catalog: ``index.likeness``), or "" when the image failed
    note : what the analysts' feedback changed, in plain words ('' when nothing): a brand ruled out by a listing
        marked not that brand, or a best match that is a known counterfeit photo (``cascade.feedback``)
    descriptor : what a scan keeps beside its results for clusters and re-scans, one float16 array of
        ``cascade.descriptors.descriptor_shape`` (global, windows, region crops, raw; ``ListingEvidence.descriptor``);
        None when failed
    """

    status: str
    error: str = ""
    verdict: str = VERDICT_NO_MATCH
    brand: str | None = None
    reference: str | None = None
    score: float = 0.0
    matches: tuple[Match, ...] = ()
    checks: str = ""
    note: str = ""
    descriptor: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failed(cls, error: ImageError) -> "MatchResult":
        return cls(status=error.kind, error=str(error))


def matched_keypoints(refs: ReferenceIndex, ev: ListingEvidence, ref_id: int,
                      limit: int = KEYPOINTS_SHOWN) -> tuple[tuple[float, float, float, float], ...]:
    """Up to ``limit`` verified inlier pairs with a reference, as (listing x, listing y, reference x, reference y),
    each normalised by its image's width or height to [0, 1]; () when verification found none."""
    found = ev.verification.get(ref_id)
    if found is None or not all(ev.image_size):
        return ()
    return keypoint_pairs(refs, found, ev.image_size, ref_id, limit)


def keypoint_pairs(refs: ReferenceIndex, found: Verification, image_size: tuple[int, int], ref_id: int,
                   limit: int = KEYPOINTS_SHOWN) -> tuple[tuple[float, float, float, float], ...]:
    """``matched_keypoints`` of one verification result (``found``) of a listing of ``image_size`` (width,
    height) against reference ``ref_id``."""
    if found.inliers == 0:
        return ()
    ref_w, ref_h = refs.local_features[refs.row_of_id[ref_id]].size
    (w, h), keep = image_size, np.linspace(0, found.inliers - 1, min(limit, found.inliers)).astype(int)
    pairs = np.hstack([found.query_points[keep] / (w, h), found.reference_points[keep] / (ref_w, ref_h)])
    return tuple(tuple(round(float(v), 3) for v in row) for row in np.clip(pairs, 0.0, 1.0))


def score_evidence(refs: ReferenceIndex, scorer: Scorer, ev: ListingEvidence) -> MatchResult:
    """Apply the calibrated models (global or full, by what ran) and pick the verdict."""
    full = ev.verified or ev.dismissed
    checks = "full" if ev.verified else "dismissed" if ev.dismissed else "global"
    brands, best_refs, brand_x = brand_feature_rows(ev)
    if not brands:
        return MatchResult(status="ok", checks=checks)
    brand_p = (scorer.brand_full if full else scorer.brand_global).predict(brand_x)
    ref_ids, copy_x = copy_feature_rows(ev)
    copy_p = dict(zip(ref_ids, (scorer.copy_full if full else scorer.copy_global).predict(copy_x)))
    ranked = []  # (brand score, brand, reference id): the brand's reference most likely to be the copied photo
    for brand, p, ref_id in zip(brands, brand_p, best_refs):
        same_brand = [c.ref_id for c in ev.candidates if c.brand == brand]
        ranked.append((float(p), brand, max(same_brand, key=lambda i: (copy_p[i], i == ref_id))))
    ranked.sort(key=lambda row: -row[0])
    by_id = {c.ref_id: c for c in ev.candidates}
    matches = tuple(Match(brand, refs.reference(ref_id).path, ref_id, round(p, 6), round(float(copy_p[ref_id]), 6),
                          round(by_id[ref_id].similarity, 6), by_id[ref_id].inliers,
                          matched_keypoints(refs, ev, ref_id))
                    for p, brand, ref_id in ranked)
    top_score, _, top_ref = ranked[0]
    best = matches[0]
    return MatchResult(status="ok", verdict=verdict(top_score, float(copy_p[top_ref]), scorer.threshold),
                       brand=best.brand, reference=best.reference, score=best.score, matches=matches, checks=checks)
