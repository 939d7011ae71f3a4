"""Verification stage: SIFT-verify a listing's best candidates, then compare the colours of verified matches."""
from __future__ import annotations

from PIL import Image

from ..features.colour import (MIN_INLIERS, ColourDifference, colour_distance, colour_pixels, hue_agreement,
                               hue_histogram)
from ..features.sift import LocalFeatures, Verification, mirror_features, verify_against
from ..index import ReferenceIndex
from ..index.shared_keypoints import distinctive_inliers
from .evidence import NOT_VERIFIED, ListingEvidence


def add_verification(refs: ReferenceIndex, query: LocalFeatures, ev: ListingEvidence, top: int,
                     hidden_brands: frozenset[str] = frozenset(), mirror_unless: int = 0) -> None:
    """SIFT-verify the ``top`` candidates (by region similarity) of one listing that are not verified yet, mirror
    image included (unless ``mirror_unless``), and count the inliers that no other brand shares
    (``index.shared_keypoints``).

    query : the listing's local features (``features.sift.extract_local_features``)
    hidden_brands : brands hidden from this listing (calibration): their shared keypoints do not count as shared
    mirror_unless : skip the mirror image when the listing as it is verifies a candidate with this many inliers
        (``features.sift.verify_against``; 0: never)
    """
    ranked = sorted(ev.candidates, key=lambda c: -c.region_similarity)[:top]
    todo = [c for c in ranked if c.inliers == NOT_VERIFIED]  # the others were verified before the region search
    rows = [refs.row_of_id[c.ref_id] for c in todo]
    references = [refs.local_features[row] for row in rows]
    found = verify_against(query, references, query_mirrored=mirror_features(query), mirror_unless=mirror_unless)
    for c, row, result in zip(todo, rows, found):
        c.inliers, c.mirrored, c.verified_after_regions = result.inliers, result.mirrored, ev.regions_searched
        c.distinctive = distinctive_inliers(refs.shared_keypoints[row], result.reference_index, hidden_brands)
        ev.verification[c.ref_id] = result
    ev.verified = True


def add_colour_check(refs: ReferenceIndex, image: Image.Image, ev: ListingEvidence) -> None:
    """The colour checks of ``features.colour``: every candidate's ``hue_agreement`` (the hues of the listing's
    centre against the reference's), and ``colour_distance`` for those verified with enough inliers."""
    listing_pixels = colour_pixels(image)
    add_hue_agreement(refs, hue_histogram(listing_pixels), ev)
    for c in ev.candidates:
        if c.inliers >= MIN_INLIERS and c.colour_distance is None:
            c.colour_distance = reference_colour_distance(refs, listing_pixels, image.size, c.ref_id,
                                                          ev.verification[c.ref_id])


def reference_colour_distance(refs: ReferenceIndex, listing_pixels, image_size: tuple[int, int], ref_id: int,
                              found: Verification) -> ColourDifference | None:
    """``features.colour.colour_distance`` of a listing (``colour_pixels``, its (width, height)) and one reference
    it verified against (``found``); None for an index version saved without thumbnails."""
    reference_pixels = refs.reference_pixels(ref_id)
    if reference_pixels is None:
        return None
    return colour_distance(listing_pixels, image_size, reference_pixels,
                           refs.local_features[refs.row_of_id[ref_id]].size, found.query_points,
                           found.reference_points)


def add_hue_agreement(refs: ReferenceIndex, listing_hues, ev: ListingEvidence) -> None:
    """Every candidate's ``hue_agreement`` with the listing's hue histogram (``features.colour.hue_histogram``;
    None when grey), which the listing's evidence keeps (a re-scan measures new candidates against it)."""
    ev.hues_measured, ev.hues = True, listing_hues
    for c, hues in zip(ev.candidates, refs.reference_hues([c.ref_id for c in ev.candidates])):
        c.hue_agreement = hue_agreement(listing_hues, hues)


def settled(ev: ListingEvidence, inliers: int) -> bool:
    """True when a verified candidate has at least ``inliers`` inliers (never when ``inliers`` is 0): an edited
    copy found by the global search, which the region search would not change."""
    return inliers > 0 and any(c.inliers >= inliers for c in ev.candidates)


def hidden_brands_of(refs: ReferenceIndex, exclude: set[int]) -> frozenset[str]:
    """Brands all of whose references are in ``exclude`` (absent from the catalog, as far as a listing knows)."""
    hidden = {refs.reference(r).brand for r in exclude}
    return frozenset(b for b in hidden if all(r.id in exclude for r in refs.references if r.brand == b))
