"""Feedback stage: the analysts' decisions kept in the index (``index.feedback_bank``) applied to every listing.

- **disabled references** are hidden from every listing (``hidden_references``), the way a build hides references
  from its synthetic listings: they are never a candidate, in the global search, the windows, the prototypes or
  the regions.
- **negative examples** (listings marked ``false_positive`` for a brand): a listing whose raw CNN descriptor has
  a cosine of ``NEAR_SIMILARITY`` or more with a negative of one of its candidate brands is SIFT-verified against
  the negative, as against a reference (``add_negative_evidence``; raw, not whitened: the whitening stresses what
  tells photos apart and drops a 0.6x resize of a photo to a cosine near 0.7, while the raw descriptor keeps it
  above 0.9). The brand is taken off its result
  (``apply_feedback``) only when the listing is a near-duplicate of the negative (``NEAR_INLIERS`` or more
  inliers) AND no reference of that brand is a better match: more inliers, or a higher cosine, than the negative.
  A re-encoded, resized or lightly cropped copy of the marked image keeps most of its keypoints and its global
  descriptor; another listing of the brand (a copy of a genuine photo) matches that photo better than the
  negative and keeps its verdict. The explanation says why ("like a listing marked not <brand> on <date>").
- **known fakes** are references (searched and verified like the genuine ones) but are scored as a brand of their
  own, one photo each (``score_with_feedback``): the scorer's brand features compare a listing with its brand's
  prototype and other photos, and a fake photo is usually far from every genuine one, so counted as one of them
  its copies would score as unlike the brand. A fake is a photo, not a product: it counts for its brand only where
  the listing is a verified copy of it (copy score of a copy verdict and ``NEAR_INLIERS`` or more inliers), never
  as "another photo of the product" (on devbench, other photos of the distractor's vegetable otherwise scored
  same_product of the fake). A result whose best match is one says so ("copy of a known counterfeit photo marked
  on <date>").
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from PIL import Image
import numpy as np

from ..features import extract_local_features
from ..features.sift import mirror_features, verify_against
from ..index import ReferenceIndex, Scorer
from .evidence import ListingEvidence
from .scoring import COPY_PROBABILITY, VERDICT_NO_MATCH, MatchResult, score_evidence, verdict
from .settings import CascadeSettings

# A near-duplicate of a marked image: raw-descriptor cosine at least NEAR_SIMILARITY (the cheap pre-check, so only
# such listings pay for SIFT) and at least NEAR_INLIERS SIFT inliers with it. Re-encoded, resized and cropped copies
# of a demo listing keep raw cosines of 0.9 and more and 100s of inliers, other photos of the product 0.74-0.77
# (figures: docs/benchmarks.md, 2026-12-07).
NEAR_SIMILARITY = 0.85
NEAR_INLIERS = 20


@dataclass(frozen=True)
class NegativeHit:
    """A negative example near a listing: its row in the bank, the whitened cosine (comparable with the candidates')
    and SIFT inliers with it."""

    row: int
    similarity: float
    inliers: int


def hidden_references(refs: ReferenceIndex, exclude: Sequence[set[int]] | None,
                      n: int) -> Sequence[set[int]] | None:
    """Per listing, the reference ids hidden from it: ``exclude`` (or none) plus the disabled references."""
    disabled = set(refs.feedback.disabled)
    if not disabled:
        return exclude
    return [disabled | set(exclude[i]) if exclude else set(disabled) for i in range(n)]


def add_negative_evidence(refs: ReferenceIndex, images: Sequence[Image.Image], raw: np.ndarray, vectors: np.ndarray,
                          evidence: Sequence[ListingEvidence], settings: CascadeSettings) -> None:
    """Set ``ev.negatives`` of each listing near a negative example of one of its candidate brands.

    raw : float32 (n, D), the listings' raw CNN descriptors; vectors : float32 (n, d), whitened
    """
    if not len(refs.negative_vectors) or not len(vectors):
        return
    negatives = refs.feedback.negatives
    closeness = np.asarray(raw, np.float32) @ refs.feedback.negative_raw.T  # (n, m)
    similarity = vectors @ refs.negative_vectors.T
    for i, ev in enumerate(evidence):
        brands = {c.brand for c in ev.candidates}
        near = [int(j) for j in np.flatnonzero(closeness[i] >= NEAR_SIMILARITY) if negatives[j].brand in brands]
        if not near:
            continue
        query = extract_local_features(images[i], long_side=settings.sift_long_side,
                                       max_features=settings.sift_features)
        found = verify_against(query, [refs.feedback.negative_features[j] for j in near],
                               query_mirrored=mirror_features(query))
        ev.negatives = [NegativeHit(j, float(similarity[i, j]), v.inliers) for j, v in zip(near, found)]


def score_with_feedback(refs: ReferenceIndex, scorer: Scorer, ev: ListingEvidence) -> MatchResult:
    """``scoring.score_evidence`` with the feedback applied: each known fake scored as a brand of its own and
    counted for its brand; the brands a negative example rules out taken off (the verdict taken again from the
    next best brand); ``note`` saying why, or that the best match is a known counterfeit photo."""
    ruled_out = _ruled_out(refs, ev)  # with the fakes still under their brand: they count as its photos here
    own = _split_fakes(refs, ev)
    scored = score_evidence(refs, scorer, ev)
    result = _merge_fakes(scored, own)
    if not result.ok or not result.matches:
        return result
    notes = [f"like a listing marked not {brand} on {marked.date} ({marked.listing})"
             for brand, marked in sorted(ruled_out.items())]
    if ruled_out or result.matches[0].ref_id != scored.matches[0].ref_id:
        matches = tuple(m for m in result.matches if m.brand not in ruled_out)
        if not matches:
            return replace(result, verdict=VERDICT_NO_MATCH, brand=None, reference=None, score=0.0, matches=(),
                           note="; ".join(notes))
        top = matches[0]
        result = replace(result, verdict=verdict(top.score, top.copy_score, scorer.threshold), brand=top.brand,
                         reference=top.reference, score=top.score, matches=matches)
    fake = refs.feedback.known_fakes.get(result.matches[0].ref_id)
    if fake is not None and result.verdict != VERDICT_NO_MATCH:
        notes.append(f"copy of a known counterfeit photo marked on {fake.date} ({fake.listing})")
    return replace(result, note="; ".join(notes)) if notes else result


def _split_fakes(refs: ReferenceIndex, ev: ListingEvidence) -> dict[str, str]:
    """Give each known-fake candidate a brand name of its own (``<brand>#fake<id>``); returns those names -> the
    real brand. Such a brand has one photo and no prototype: its best reference stands for it
    (``evidence.brand_feature_rows``)."""
    fakes, own = refs.feedback.known_fakes, {}
    for c in ev.candidates:
        if c.ref_id in fakes:
            own[f"{c.brand}#fake{c.ref_id}"] = c.brand
            c.brand = f"{c.brand}#fake{c.ref_id}"
    return own


def _merge_fakes(result: MatchResult, own: dict[str, str]) -> MatchResult:
    """``result`` with the known fakes' own brands named as their brand again, one match per brand (the best),
    a fake's only where the listing is a verified copy of it (module docstring). The verdict is the caller's."""
    if not own or not result.matches:
        return result
    matches, seen = [], set()
    for m in result.matches:
        if m.brand in own and (m.copy_score < COPY_PROBABILITY or m.inliers < NEAR_INLIERS):
            continue
        brand = own.get(m.brand, m.brand)
        if brand not in seen:
            seen.add(brand)
            matches.append(replace(m, brand=brand))
    if not matches:
        return replace(result, verdict=VERDICT_NO_MATCH, brand=None, reference=None, score=0.0, matches=())
    return replace(result, brand=matches[0].brand, matches=tuple(matches))


def _ruled_out(refs: ReferenceIndex, ev: ListingEvidence) -> dict:
    """Brand -> the negative example (``Marked``) that rules it out for this listing."""
    out = {}
    for hit in sorted(ev.negatives, key=lambda h: (-h.inliers, -h.similarity)):
        marked = refs.feedback.negatives[hit.row]
        if marked.brand in out or hit.inliers < NEAR_INLIERS:
            continue
        own = [c for c in ev.candidates if c.brand == marked.brand]
        if own and (max(c.inliers for c in own) > hit.inliers or max(c.similarity for c in own) > hit.similarity):
            continue  # a better match to one of the brand's references than to the negative
        out[marked.brand] = marked
    return out
