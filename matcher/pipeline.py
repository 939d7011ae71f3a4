"""The matching cascade for a batch of decoded images: embed -> search -> (regions, verify) -> score.

Every listing gets the cheap global stage. Only listings that pass the index's gate (``gate.py``: they might
match something, and they look like the catalog's listings) get the expensive stages: SIFT verification of the
top candidates, then, unless a candidate verified conclusively (``CascadeSettings.settled_inliers``), a search
over image regions and verification of the candidates it brings up. The regions are half-size windows on a 2 x 2
grid and a centre crop; only the three whose feature-map windows (free with the global descriptor) look most like
a reference go through the CNN again. Clear non-matches, the bulk of marketplace traffic, stay cheap, and clear
copies skip the region search.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from .colour import MIN_INLIERS, colour_distance, colour_pixels, hue_agreement, hue_histogram
from .embed import Embedder
from .evidence import NOT_VERIFIED, Candidate, ListingEvidence, brand_feature_rows, copy_feature_rows
from .gate import alike, passes_gate
from .score import verdict
from .verify import LocalFeatures, extract_local_features, mirror_features, verify_against
from .shared import distinctive_inliers
from .threads import one_blas_thread
from .version import IndexVersion


@dataclass(frozen=True)
class CascadeSettings:
    """Knobs of the cascade (defaults are the tested ones).

    candidates : references kept per listing from the global search
    verify_top : how many of the best candidates get SIFT verification
    regions : search image regions for doubtful listings
    region_grid : windows per side of the region lattice (2 -> the 4 quadrants + a centre crop; 3 -> 9 + 1)
    region_crops_kept : with region_grid 2, how many of the 5 crops go through the CNN: those whose feature-map
        windows (``embed.WINDOWS``, the same layout) are most similar to a reference
    sift_long_side : the listing is resized to this longer side (pixels) for SIFT; references keep theirs
    sift_features : at most this many of the listing's strongest SIFT keypoints are kept
    settled_inliers : a listing whose global candidates verify with at least this many inliers skips the region
        search (0: always search regions)
    mirror_unless_inliers : verification skips the listing's mirror image when the listing as it is verifies a
        candidate with at least this many inliers (0: always check the mirror image too)
    prototypes : compare listings with brand prototypes (``prototypes.py``); False only for ablations, on an
        index built with ``BuildSettings(brand_prototypes=False)``
    colour : compare the colours of verified matches (``colour.py``); False only for ablations, on an index
        built with ``BuildSettings(colour_check=False)``
    force_full : run the expensive stages for every listing (used to fit the scorer)
    """

    candidates: int = 20
    verify_top: int = 6
    regions: bool = True
    region_grid: int = 2
    region_crops_kept: int = 3
    verify: bool = True
    sift_long_side: int = 320
    sift_features: int = 1000
    settled_inliers: int = 40
    mirror_unless_inliers: int = 40
    prototypes: bool = True
    colour: bool = True
    force_full: bool = False


@dataclass(frozen=True)
class BrandScore:
    """One candidate brand of a listing, with its calibrated scores and best reference."""

    brand: str
    reference: str
    ref_id: int
    score: float  # P(listing shows this brand's product)
    copy_score: float  # P(listing is an edited copy of ``reference``)
    similarity: float
    inliers: int
    keypoints: tuple[tuple[float, float, float, float], ...] = ()  # see matched_keypoints


@dataclass
class ListingOutcome:
    """Evidence, per-brand scores (best first) and verdict of one listing."""

    evidence: ListingEvidence
    brands: list[BrandScore] = field(default_factory=list)
    verdict: str = "no_match"


REGION_SIZE = 0.5  # window side as a fraction of the image side
FINISH_THREADS = 2  # listings whose last stages (verification after the region search, colour) run at once


def region_boxes(size: tuple[int, int], grid: int = 3) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) pixel boxes of an image of ``size`` (width, height): overlapping half-size
    windows on a grid x grid lattice (grid=3: corners, edge middles, centre; row by row) and a 60% centre crop,
    grid * grid + 1 boxes. Catches a product shown small inside a screenshot, collage or background scene."""
    w, h = size
    step = (1.0 - REGION_SIZE) / max(grid - 1, 1)
    boxes = [(int(i * step * w), int(j * step * h),
              int((i * step + REGION_SIZE) * w), int((j * step + REGION_SIZE) * h))
             for j in range(grid) for i in range(grid)]
    boxes.append((int(0.2 * w), int(0.2 * h), int(0.8 * w), int(0.8 * h)))
    return boxes


def region_crops(image: Image.Image, grid: int = 3) -> list[Image.Image]:
    """The image cut to each of its ``region_boxes``."""
    return [image.crop(b) for b in region_boxes(image.size, grid)]


def global_evidence(version: IndexVersion, query_vectors: np.ndarray, *, k: int,
                    exclude: Sequence[set[int]] | None = None, prototypes: bool = True) -> list[ListingEvidence]:
    """Nearest references of whitened query vectors (n, d) and (unless ``prototypes`` is False) their similarity
    to brand prototypes; ``exclude[i]`` hides ref ids from query i."""
    if len(version.background):
        background = (query_vectors @ version.background.T).max(axis=1)
    else:
        background = np.full(len(query_vectors), -1.0, np.float32)
    out = []
    for hits, bg in zip(_visible_neighbours(version, query_vectors, k, exclude), background):
        cands = [Candidate(r, version.reference(r).brand, s, s) for s, r in hits[:k]]
        out.append(ListingEvidence(candidates=cands, background_similarity=float(bg)))
    if prototypes:
        hidden_rows = [[version.row_of_id[r] for r in e] for e in exclude] if exclude else None
        for ev, row in zip(out, version.prototypes.similarities(query_vectors, hidden_rows)):
            ev.prototype_similarity = version.prototypes.nearest(row, {c.brand for c in ev.candidates})
    return out


def _visible_neighbours(version: IndexVersion, vectors: np.ndarray, k: int, exclude: Sequence[set[int]] | None,
                        rows_per_listing: int = 1) -> list[list[tuple[float, int]]]:
    """Search whitened ``vectors`` ((n * rows_per_listing, d), each listing's rows consecutive) for k neighbours
    each, plus as many as the largest ``exclude`` set so that hiding leaves k; per listing, its rows' (cosine,
    ref id) hits in row order, without empty slots and ids in ``exclude[i]``."""
    extra = max((len(e) for e in exclude), default=0) if exclude else 0
    sims, ids = version.index.search(vectors, k + extra)
    n = len(vectors) // rows_per_listing
    out = []
    for i, (row_sims, row_ids) in enumerate(zip(sims.reshape(n, -1), ids.reshape(n, -1))):
        hidden = exclude[i] if exclude else set()
        out.append([(s, r) for s, r in zip(row_sims.tolist(), row_ids.tolist()) if r >= 0 and r not in hidden])
    return out


def add_window_similarity(version: IndexVersion, evidence: Sequence[ListingEvidence], windows: np.ndarray, *,
                          exclude: Sequence[set[int]] | None = None) -> None:
    """Set each listing's ``window_scores``: per feature-map window (raw, (n, WINDOWS, D)), its best cosine to
    any reference not hidden from the listing (their maximum is ``window_similarity``)."""
    n, per_image = windows.shape[:2]
    if n == 0 or per_image == 0:
        return
    vectors = version.whitening.apply(windows.reshape(n * per_image, -1))
    per_window = [e for e in exclude for _ in range(per_image)] if exclude else None
    best = [max((s for s, _ in hits), default=-1.0) for hits in _visible_neighbours(version, vectors, 1, per_window)]
    for i, ev in enumerate(evidence):
        ev.window_scores = tuple(best[i * per_image:(i + 1) * per_image])


def add_region_evidence(version: IndexVersion, embedder: Embedder, images: Sequence[Image.Image],
                        evidence: Sequence[ListingEvidence], query_vectors: np.ndarray, *, grid: int = 3,
                        per_region: int = 5, exclude: Sequence[set[int]] | None = None,
                        crops_kept: int | None = None) -> None:
    """Search the listings' regions too: add each region's nearest references as candidates, and raise every
    candidate's region_similarity to its best cosine over the regions.

    query_vectors : whitened whole-image vectors (n, d) of ``images``, to give new candidates their similarity
    crops_kept : embed only this many crops per listing, those whose feature-map windows scored best
        (``ListingEvidence.window_scores``); ignored unless every listing has one score per crop
    """
    per_listing = [region_boxes(im.size, grid) for im in images]
    if crops_kept is not None and all(len(ev.window_scores) == len(b) for ev, b in zip(evidence, per_listing)):
        per_listing = [_best_windows(b, ev.window_scores, crops_kept) for b, ev in zip(per_listing, evidence)]
    crops = [im.crop(box) for im, boxes in zip(images, per_listing) for box in boxes]
    if not crops:
        return
    per_image = len(crops) // len(images)
    vectors = version.whitening.apply(embedder.describe_regions(crops))
    hits = _visible_neighbours(version, vectors, per_region, exclude, per_image)
    vectors = vectors.reshape(len(images), per_image, -1)
    for i, (ev, regions) in enumerate(zip(evidence, vectors)):
        known = {c.ref_id for c in ev.candidates}
        for ref_id in sorted({r for _, r in hits[i]} - known):
            s = float(query_vectors[i] @ version.vectors[version.row_of_id[ref_id]])
            ev.candidates.append(Candidate(ref_id, version.reference(ref_id).brand, s, s))
        ev.candidates.sort(key=lambda c: -c.similarity)
        if not ev.candidates:
            continue
        refs = version.vectors[[version.row_of_id[c.ref_id] for c in ev.candidates]]
        best = (regions @ refs.T).max(axis=0)
        for c, s in zip(ev.candidates, best):
            c.region_similarity = max(c.similarity, float(s))
        ev.regions_searched = True


def _best_windows(regions: list, scores: Sequence[float], kept: int) -> list:
    """The ``kept`` regions (boxes or crops) with the highest window ``scores`` (one per region), in their
    original order."""
    best = np.argsort(-np.asarray(scores), kind="stable")[:kept]
    return [regions[j] for j in sorted(best)]


def add_verification(version: IndexVersion, query: LocalFeatures, ev: ListingEvidence, top: int,
                     hidden_brands: frozenset[str] = frozenset(), mirror_unless: int = 0) -> None:
    """SIFT-verify the ``top`` candidates (by region similarity) of one listing that are not verified yet, mirror
    image included (unless ``mirror_unless``), and count the inliers that no other brand shares (``shared.py``).

    query : the listing's local features (``verify.extract_local_features``)
    hidden_brands : brands hidden from this listing (calibration): their shared keypoints do not count as shared
    mirror_unless : skip the mirror image when the listing as it is verifies a candidate with this many inliers
        (``verify.verify_against``; 0: never)
    """
    ranked = sorted(ev.candidates, key=lambda c: -c.region_similarity)[:top]
    todo = [c for c in ranked if c.inliers == NOT_VERIFIED]  # the others were verified before the region search
    rows = [version.row_of_id[c.ref_id] for c in todo]
    references = [version.local_features[row] for row in rows]
    found = verify_against(query, references, query_mirrored=mirror_features(query), mirror_unless=mirror_unless)
    for c, row, result in zip(todo, rows, found):
        c.inliers, c.mirrored = result.inliers, result.mirrored
        c.distinctive = distinctive_inliers(version.shared_keypoints[row], result.reference_index, hidden_brands)
        ev.verification[c.ref_id] = result
    ev.verified = True


def add_colour_check(version: IndexVersion, image: Image.Image, ev: ListingEvidence) -> None:
    """The colour checks of ``colour.py``: every candidate's ``hue_agreement`` (the hues of the listing's centre
    against the reference's), and ``colour_distance`` for those verified with enough inliers."""
    listing_pixels = colour_pixels(image)
    listing_hues = hue_histogram(listing_pixels)
    for c, hues in zip(ev.candidates, version.reference_hues([c.ref_id for c in ev.candidates])):
        c.hue_agreement = hue_agreement(listing_hues, hues)
    for c in ev.candidates:
        if c.inliers < MIN_INLIERS or c.colour_distance is not None:
            continue
        reference_pixels = version.reference_pixels(c.ref_id)
        if reference_pixels is None:  # an index version saved without thumbnails
            continue
        found = ev.verification[c.ref_id]
        c.colour_distance = colour_distance(
            listing_pixels, image.size, reference_pixels,
            version.local_features[version.row_of_id[c.ref_id]].size, found.query_points, found.reference_points)


def settled(ev: ListingEvidence, inliers: int) -> bool:
    """True when a verified candidate has at least ``inliers`` inliers (never when ``inliers`` is 0): an edited
    copy found by the global search, which the region search would not change."""
    return inliers > 0 and any(c.inliers >= inliers for c in ev.candidates)


def hidden_brands_of(version: IndexVersion, exclude: set[int]) -> frozenset[str]:
    """Brands all of whose references are in ``exclude`` (absent from the catalog, as far as a listing knows)."""
    hidden = {version.reference(r).brand for r in exclude}
    return frozenset(b for b in hidden if all(r.id in exclude for r in version.references if r.brand == b))


def matched_keypoints(version: IndexVersion, ev: ListingEvidence, ref_id: int,
                      limit: int = 32) -> tuple[tuple[float, float, float, float], ...]:
    """Up to ``limit`` verified inlier pairs with a reference, as (listing x, listing y, reference x, reference y),
    each normalised by its image's width or height to [0, 1]; () when verification found none."""
    found = ev.verification.get(ref_id)
    if found is None or found.inliers == 0 or not all(ev.image_size):
        return ()
    ref_w, ref_h = version.local_features[version.row_of_id[ref_id]].size
    (w, h), keep = ev.image_size, np.linspace(0, found.inliers - 1, min(limit, found.inliers)).astype(int)
    pairs = np.hstack([found.query_points[keep] / (w, h), found.reference_points[keep] / (ref_w, ref_h)])
    return tuple(tuple(round(float(v), 3) for v in row) for row in np.clip(pairs, 0.0, 1.0))


def score_evidence(version: IndexVersion, ev: ListingEvidence) -> ListingOutcome:
    """Apply the calibrated models (global or full, by what ran) and pick the verdict."""
    scorer = version.scorer
    brands, best_refs, brand_x = brand_feature_rows(ev)
    if not brands:
        return ListingOutcome(evidence=ev)
    full = ev.verified or ev.dismissed
    brand_p = (scorer.brand_full if full else scorer.brand_global).predict(brand_x)
    ref_ids, copy_x = copy_feature_rows(ev)
    copy_p = dict(zip(ref_ids, (scorer.copy_full if full else scorer.copy_global).predict(copy_x)))
    by_id = {c.ref_id: c for c in ev.candidates}
    rows = []
    for brand, p, ref_id in zip(brands, brand_p, best_refs):
        # the brand's reference to report: the one most likely to be the copied photo
        same_brand = [c.ref_id for c in ev.candidates if c.brand == brand]
        ref_id = max(same_brand, key=lambda i: (copy_p[i], i == ref_id))
        c = by_id[ref_id]
        rows.append(BrandScore(brand=brand, reference=version.reference(ref_id).path, ref_id=ref_id,
                               score=float(p), copy_score=float(copy_p[ref_id]), similarity=c.similarity,
                               inliers=c.inliers, keypoints=matched_keypoints(version, ev, ref_id)))
    rows.sort(key=lambda b: -b.score)
    top = rows[0]
    return ListingOutcome(evidence=ev, brands=rows, verdict=verdict(top.score, top.copy_score, scorer.threshold))


def collect_evidence(version: IndexVersion, embedder: Embedder, images: Sequence[Image.Image],
                     settings: CascadeSettings = CascadeSettings(),
                     exclude: Sequence[set[int]] | None = None) -> list[ListingEvidence]:
    """The cascade's evidence for decoded RGB images, one ListingEvidence per image, same order. BLAS runs on
    one thread meanwhile (``threads.py``: its idle threads would spin on the cores the CNN and SIFT need)."""
    if not images:
        return []
    with one_blas_thread():
        return _collect_evidence(version, embedder, images, settings, exclude)


def _collect_evidence(version: IndexVersion, embedder: Embedder, images: Sequence[Image.Image],
                      settings: CascadeSettings, exclude: Sequence[set[int]] | None) -> list[ListingEvidence]:
    raw, windows = embedder.describe_with_windows(list(images))
    vectors = version.whitening.apply(raw)
    evidence = global_evidence(version, vectors, k=settings.candidates, exclude=exclude,
                               prototypes=settings.prototypes)
    add_window_similarity(version, evidence, windows, exclude=exclude)
    for ev, image in zip(evidence, images):
        ev.image_size = image.size
    if len(version.likeness):
        for ev, likeness in zip(evidence, version.likeness.of(raw)):
            ev.likeness = float(likeness)
    if settings.force_full:
        doubtful = list(range(len(images)))
    else:
        passed, like = passes_gate(version.scorer, evidence), alike(version.scorer, evidence)
        doubtful = [int(i) for i in np.flatnonzero(passed & like)]
        for i in np.flatnonzero(passed & ~like) if settings.verify else []:
            evidence[i].dismissed = True  # scored by the full models, as if the expensive stages found nothing
            if settings.colour:  # its hues are compared (cheap), as for every verified listing
                add_colour_check(version, images[i], evidence[i])
    hidden = [hidden_brands_of(version, exclude[i]) if exclude else frozenset() for i in doubtful]
    # SIFT extraction (OpenCV, releases the GIL) runs in a thread, ahead of the verification of earlier listings
    queries = []  # the doubtful listings' local features
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = ([pool.submit(extract_local_features, images[i], long_side=settings.sift_long_side,
                                max_features=settings.sift_features)
                    for i in doubtful] if settings.verify else [])
        for i, job, brands in zip(doubtful, pending, hidden):
            queries.append(job.result())
            add_verification(version, queries[-1], evidence[i], settings.verify_top, brands,
                             settings.mirror_unless_inliers)
    unsettled = [k for k, i in enumerate(doubtful) if not settled(evidence[i], settings.settled_inliers)]
    searched = set(unsettled) if settings.regions else set()
    if searched:
        chosen = [doubtful[k] for k in unsettled]
        add_region_evidence(version, embedder, [images[i] for i in chosen], [evidence[i] for i in chosen],
                            vectors[chosen], grid=settings.region_grid,
                            crops_kept=settings.region_crops_kept,
                            exclude=[exclude[i] for i in chosen] if exclude else None)

    def finish(k: int) -> None:
        """The last stages of the k-th doubtful listing (they only touch its own evidence)."""
        i = doubtful[k]
        if k in searched and settings.verify:  # candidates the regions brought up
            add_verification(version, queries[k], evidence[i], settings.verify_top, hidden[k],
                             settings.mirror_unless_inliers)
        if settings.verify and settings.colour:
            add_colour_check(version, images[i], evidence[i])

    # on FINISH_THREADS threads: the matrix products of verification and OpenCV's RANSAC release the GIL
    with ThreadPoolExecutor(max_workers=FINISH_THREADS, thread_name_prefix="matcher-finish") as pool:
        list(pool.map(finish, range(len(doubtful))))
    return evidence


def run_cascade(version: IndexVersion, embedder: Embedder, images: Sequence[Image.Image],
                settings: CascadeSettings = CascadeSettings()) -> list[ListingOutcome]:
    """Match decoded RGB images against an index version; one ListingOutcome per image, same order (BLAS on one
    thread throughout, see ``collect_evidence``)."""
    with one_blas_thread():
        return [score_evidence(version, ev) for ev in collect_evidence(version, embedder, images, settings)]
