"""Region stage: search windows of a listing image, for a product shown small inside a larger picture.

The regions are half-size windows on a grid and a centre crop; with a 2 x 2 grid only the ``crops_kept`` whose
feature-map windows (free with the global descriptor) look most like a reference go through the CNN again.
"""
from __future__ import annotations

from typing import Sequence

from PIL import Image
import numpy as np

from ..features import Embedder
from ..index import ReferenceIndex
from .evidence import Candidate, ListingEvidence
from .search import visible_neighbours

PER_REGION = 5  # nearest references each crop brings up


def region_boxes(size: tuple[int, int], grid: int = 3,
                 window: float = 0.5) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) pixel boxes of an image of ``size`` (width, height): overlapping windows of
    ``window`` times each side on a grid x grid lattice (grid=3: corners, edge middles, centre; row by row) and a
    60% centre crop, grid * grid + 1 boxes. Catches a product shown small inside a screenshot, collage or scene."""
    w, h = size
    step = (1.0 - window) / max(grid - 1, 1)
    boxes = [(int(i * step * w), int(j * step * h),
              int((i * step + window) * w), int((j * step + window) * h))
             for j in range(grid) for i in range(grid)]
    boxes.append((int(0.2 * w), int(0.2 * h), int(0.8 * w), int(0.8 * h)))
    return boxes


def region_crops(image: Image.Image, grid: int = 3, window: float = 0.5) -> list[Image.Image]:
    """The image cut to each of its ``region_boxes``."""
    return [image.crop(b) for b in region_boxes(image.size, grid, window)]


def add_region_evidence(refs: ReferenceIndex, embedder: Embedder, images: Sequence[Image.Image],
                        evidence: Sequence[ListingEvidence], query_vectors: np.ndarray, *, grid: int = 3,
                        window: float = 0.5, per_region: int = PER_REGION, exclude: Sequence[set[int]] | None = None,
                        crops_kept: int | None = None) -> None:
    """Search the listings' regions too: add each region's nearest references as candidates, and raise every
    candidate's region_similarity to its best cosine over the regions.

    query_vectors : whitened whole-image vectors (n, d) of ``images``, to give new candidates their similarity
    grid, window : the regions (``region_boxes``)
    crops_kept : embed only this many crops per listing, those whose feature-map windows scored best
        (``ListingEvidence.window_scores``); ignored unless every listing has one score per crop
    """
    per_listing = [region_boxes(im.size, grid, window) for im in images]
    if crops_kept is not None and all(len(ev.window_scores) == len(b) for ev, b in zip(evidence, per_listing)):
        per_listing = [_best_windows(b, ev.window_scores, crops_kept) for b, ev in zip(per_listing, evidence)]
    crops = [im.crop(box) for im, boxes in zip(images, per_listing) for box in boxes]
    if not crops:
        return
    per_image = len(crops) // len(images)
    vectors = refs.whitening.apply(embedder.describe_regions(crops))
    hits = visible_neighbours(refs, vectors, per_region, exclude, per_image)
    vectors = vectors.reshape(len(images), per_image, -1)
    for i, (ev, regions) in enumerate(zip(evidence, vectors)):
        ev.region_vectors = regions  # kept beside a scan's results: a re-scan checks new references against them
        found = {r for _, r in hits[i]}
        ev.region_hits = tuple(sorted(found))
        add_region_hits(refs, ev, regions, found, query_vectors[i])
        ev.regions_searched = True


def add_panel_evidence(refs: ReferenceIndex, embedder: Embedder, image: Image.Image, ev: ListingEvidence,
                       query_vector: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], *,
                       per_region: int = PER_REGION, exclude: set[int] | None = None) -> None:
    """The region search over the photos of one multi-photo listing (``layout.photo_panels``), on top of its
    regions: each panel's nearest references join the candidates and raise their region similarity. The
    listing's kept crops (``region_vectors``) stay those of ``add_region_evidence``; ``panels_searched`` says more
    were looked at."""
    vectors = refs.whitening.apply(embedder.describe_regions([image.crop(box) for box in boxes]))
    hits = visible_neighbours(refs, vectors, per_region, [exclude or set()], len(boxes))[0]
    add_region_hits(refs, ev, vectors, {r for _, r in hits}, query_vector)
    ev.panels_searched = True


def add_region_hits(refs: ReferenceIndex, ev: ListingEvidence, regions: np.ndarray, hits: set[int],
                    query_vector: np.ndarray) -> None:
    """References ``hits`` that regions (whitened crop vectors (k, d)) brought up join the candidates (whole-image
    cosine from ``query_vector``, whitened (d,)); every candidate's region similarity is raised to its best cosine
    with them. A re-scan calls it with the crops a scan kept (``scan.rescore``)."""
    known = {c.ref_id for c in ev.candidates}
    for ref_id in sorted(hits - known):
        s = float(query_vector @ refs.vectors[refs.row_of_id[ref_id]])
        ev.candidates.append(Candidate(ref_id, refs.reference(ref_id).brand, s, s))
    ev.candidates.sort(key=lambda c: -c.similarity)
    if not ev.candidates:
        return
    candidate_vectors = refs.vectors[[refs.row_of_id[c.ref_id] for c in ev.candidates]]
    best = (regions @ candidate_vectors.T).max(axis=0)
    for c, s in zip(ev.candidates, best):
        c.region_similarity = max(c.region_similarity, float(s))


def _best_windows(regions: list, scores: Sequence[float], kept: int) -> list:
    """The ``kept`` regions (boxes or crops) with the highest window ``scores`` (one per region), in their
    original order."""
    best = np.argsort(-np.asarray(scores), kind="stable")[:kept]
    return [regions[j] for j in sorted(best)]
