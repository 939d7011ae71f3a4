"""What the engine knows about one listing, and the feature rows the scorer reads.

A listing's evidence is its nearest references (by global cosine similarity, optionally also over image
regions), their local-feature inlier counts where verification ran, and how similar the listing is to the
index's background photos (a listing close to everyday photos is less likely a product copy).

Two feature tables come out of it:
- brand rows, one per candidate brand: "is this listing a photo of this brand's product?" (copy or same product)
- copy rows, one per candidate reference: "is this listing an edited copy of this very photo?"
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from ..features.colour import ColourDifference

NOT_VERIFIED = -1


@dataclass
class Candidate:
    """A reference near the listing.

    similarity : cosine of whole-image descriptors, in [-1, 1]
    region_similarity : best cosine over the listing's regions (whole image included); equals
        ``similarity`` when regions were not searched
    inliers : RANSAC inliers of local-feature verification, or NOT_VERIFIED (-1)
    distinctive : those of the inliers on keypoints no other brand shares (``index.shared_keypoints``), or NOT_VERIFIED
    mirrored : the listing matched as a mirror image
    colour_distance : hue differences (``features.colour.ColourDifference``: typical, patch, mismatch) where the
        verified match aligns the two photos, or None when not measured (too few inliers, or not verified)
    hue_agreement : overlap in [0, 1] of the hue histograms of the listing's and the reference's centres
        (``features.colour``); 1 when not measured or when either is grey
    verified_after_regions : verified among the candidates the region search ranked first (not before it)
    """

    ref_id: int
    brand: str
    similarity: float
    region_similarity: float
    inliers: int = NOT_VERIFIED
    distinctive: int = NOT_VERIFIED
    mirrored: bool = False
    colour_distance: ColourDifference | None = None
    hue_agreement: float = 1.0
    verified_after_regions: bool = False


@dataclass
class ListingEvidence:
    """Candidates sorted by similarity (best first) and the background similarity of one listing."""

    candidates: list[Candidate]
    background_similarity: float
    verified: bool = False
    regions_searched: bool = False
    verification: dict = field(default_factory=dict)  # ref_id -> features.sift.Verification, for reports
    image_size: tuple[int, int] = (0, 0)  # (width, height) of the listing image, pixels
    window_scores: tuple[float, ...] = ()  # per window (features.pooling.WINDOWS): its best cosine to a reference
    prototype_similarity: dict = field(default_factory=dict)  # brand -> cosine to its prototype (index.prototypes)
    likeness: float | None = None  # best cosine to the index's synthetic listings (index.likeness); None: not measured
    dismissed: bool = False  # unlike the catalog's listings: expensive stages skipped, scored as if they found nothing
    hues_measured: bool = False  # the colour check ran (``verification.add_colour_check``)
    hues: np.ndarray | None = None  # then: hue histogram (HUE_BINS,) of the listing's centre; None when grey
    negatives: list = field(default_factory=list)  # negative examples it is near (cascade.feedback.NegativeHit)
    # whitened crop vectors (k, d) float32 the region search embedded (``regions.py``); None when not searched
    region_vectors: np.ndarray | None = None
    region_hits: tuple[int, ...] = ()  # the reference ids the region search's crops brought up (sorted)
    panels_searched: bool = False  # a multi-photo listing's panels were searched too (``regions.add_panel_evidence``)
    # what a scan keeps for clusters and re-scans (``descriptors.py``: global, windows, crops, raw; float16
    # ``descriptor_shape``, ``MatchResult.descriptor``); None when not kept
    descriptor: np.ndarray | None = None

    @property
    def window_similarity(self) -> float:
        """Best cosine of any feature-map window to any reference (gate.py); -1 when no window was searched."""
        return max(self.window_scores, default=-1.0)

    def branch(self) -> "ListingEvidence":
        """A copy whose candidates, verification results and negatives can change without touching this one (the
        arrays, which the stages replace rather than change, are shared)."""
        return replace(self, candidates=[replace(c) for c in self.candidates], verification=dict(self.verification),
                       prototype_similarity=dict(self.prototype_similarity), negatives=list(self.negatives))


# Feature names; the "global" scorer reads only the first GLOBAL_* columns, the full scorer all of them.
BRAND_FEATURES = [
    "max_sim", "second_sim", "margin_next_brand", "top5_share", "sim_minus_background", "background_sim",
    "prototype_sim", "prototype_margin", "max_region_sim", "region_margin_next_brand", "log_max_inliers",
    "log_second_inliers", "inlier_margin", "log_max_distinctive", "distinctive_margin",
    "colour_checked", "colour_distance", "colour_patch", "colour_mismatch", "hue_agreement",
]
GLOBAL_BRAND_FEATURES = 6
# Features whose direction is known: colours that differ more never make a match likelier, hues that agree more
# never make it less likely. The full brand model is fitted under these signs (``index.scorer.fit_logistic``):
# fitted freely, the colour differences' three correlated statistics took weights of both signs, and a sister
# carton with a differently coloured band, its patch difference far above genuine photos', scored as a near-certain
# match (figures: docs/benchmarks.md).
BRAND_FEATURE_SIGNS = {"colour_distance": -1, "colour_patch": -1, "colour_mismatch": -1, "hue_agreement": +1}
COPY_FEATURES = [
    "sim", "margin_next_ref", "sim_minus_background", "background_sim",
    "region_sim", "log_inliers", "inlier_margin", "mirrored",
]
GLOBAL_COPY_FEATURES = 4


def brand_feature_signs() -> np.ndarray:
    """(len(BRAND_FEATURES),) float: BRAND_FEATURE_SIGNS as -1 / 0 / +1 per column, for ``fit_logistic(signs=)``."""
    return np.array([BRAND_FEATURE_SIGNS.get(name, 0) for name in BRAND_FEATURES], np.float64)


CHANCE_INLIERS = 5  # RANSAC fits a homography to any 4 matches: unrelated photos reach about this many by chance


def _log_count(count: int) -> float:
    """log(1 + the part of a verified count above chance): counts up to CHANCE_INLIERS and NOT_VERIFIED give 0
    (most candidates of a listing: answered without numpy, as this runs for every candidate of every listing)."""
    return 0.0 if count <= CHANCE_INLIERS else float(np.log1p(count - CHANCE_INLIERS))


def _max_of_others(values: np.ndarray, default: float) -> np.ndarray:
    """(n,) -> (n,): for each i, the largest of values[j] over j != i (``default`` when n == 1)."""
    if len(values) == 1:
        return np.array([default], np.float64)
    first, second = np.argsort(-values, kind="stable")[:2]
    out = np.full(len(values), values[first], np.float64)
    out[first] = values[second]
    return out


def _best_others(values: dict[str, float], default: float) -> Callable[[str], float]:
    """``best_other(brand)``: the largest of ``values`` over brands other than ``brand`` (``default`` when there is
    none); the two largest are found once, so asking for every brand costs O(brands), not O(brands^2)."""
    top = sorted(values.items(), key=lambda item: -item[1])[:2]
    second = top[1][1] if len(top) > 1 else default

    def best_other(brand: str) -> float:
        if not top:
            return default
        return second if top[0][0] == brand else top[0][1]
    return best_other


def brand_feature_rows(ev: ListingEvidence) -> tuple[list[str], list[int], np.ndarray]:
    """One row per candidate brand.

    Returns
    -------
    brands : brand names, best first
    best_ref_ids : the brand's most similar reference (by region similarity, then inliers)
    features : float32 (n_brands, len(BRAND_FEATURES))
    """
    by_brand: dict[str, list[Candidate]] = {}
    for c in ev.candidates:
        by_brand.setdefault(c.brand, []).append(c)
    if not by_brand:
        return [], [], np.zeros((0, len(BRAND_FEATURES)), np.float32)
    top5 = [c.brand for c in ev.candidates[:5]]
    best_sim = {b: max(c.similarity for c in cs) for b, cs in by_brand.items()}
    best_region = {b: max(c.region_similarity for c in cs) for b, cs in by_brand.items()}
    inlier_value = {id(c): _log_count(c.inliers) for c in ev.candidates}
    best_inl = {b: max(inlier_value[id(c)] for c in cs) for b, cs in by_brand.items()}
    best_distinct = {b: max(_log_count(c.distinctive) for c in cs) for b, cs in by_brand.items()}
    # the colours of the brand's best-aligned measured reference (most inliers: features.colour), in units of 100
    aligned = {b: max((c for c in cs if c.colour_distance is not None), key=lambda c: c.inliers, default=None)
               for b, cs in by_brand.items()}
    colour = {b: None if c is None else (c.colour_distance.typical / 100.0, c.colour_distance.patch / 100.0,
                                         c.colour_distance.mismatch) for b, c in aligned.items()}
    floor = min(c.similarity for c in ev.candidates)
    # a brand without a prototype cosine (prototypes off, or a brand only the region search brought in: computing
    # theirs measured no better on devbench) counts its best reference as its prototype
    prototype = ev.prototype_similarity or best_sim
    brands = sorted(by_brand, key=lambda b: -max(best_region[b], best_sim[b]))
    other_sim, other_prototype = _best_others(best_sim, floor), _best_others(prototype, floor)
    other_region, other_inl = _best_others(best_region, floor), _best_others(best_inl, 0.0)
    other_distinct = _best_others(best_distinct, 0.0)
    rows, best_refs = [], []
    for b in brands:
        cs = by_brand[b]
        sims = sorted((c.similarity for c in cs), reverse=True)
        inl = sorted((inlier_value[id(c)] for c in cs), reverse=True)
        own_prototype = prototype.get(b, sims[0])
        rows.append([
            sims[0], sims[1] if len(sims) > 1 else floor, sims[0] - other_sim(b),
            top5.count(b) / 5.0, sims[0] - ev.background_similarity, ev.background_similarity,
            own_prototype, own_prototype - other_prototype(b),
            best_region[b], best_region[b] - other_region(b),
            inl[0], inl[1] if len(inl) > 1 else 0.0, inl[0] - other_inl(b),
            best_distinct[b], best_distinct[b] - other_distinct(b),
            float(colour[b] is not None), *(colour[b] or (0.0, 0.0, 0.0)), max(c.hue_agreement for c in cs),
        ])
        best = max(cs, key=lambda c: (c.region_similarity, c.inliers, c.similarity))
        best_refs.append(best.ref_id)
    return brands, best_refs, np.asarray(rows, dtype=np.float32)


def copy_feature_rows(ev: ListingEvidence) -> tuple[list[int], np.ndarray]:
    """One row per candidate reference: (ref_ids, float32 (n, len(COPY_FEATURES)))."""
    cs = ev.candidates
    if not cs:
        return [], np.zeros((0, len(COPY_FEATURES)), np.float32)
    sims = np.array([c.similarity for c in cs], np.float64)
    inliers = np.array([_log_count(c.inliers) for c in cs], np.float64)
    background = ev.background_similarity
    rows = np.column_stack([
        sims, sims - _max_of_others(sims, sims[0]), sims - background, np.full(len(cs), background),
        [c.region_similarity for c in cs], inliers, inliers - _max_of_others(inliers, 0.0),
        [float(c.mirrored) for c in cs],
    ])
    return [c.ref_id for c in cs], rows.astype(np.float32)
