"""The cascade's knobs, in one place. What an index was built with (brand prototypes, the colour check, the
runtime of region crops) is not a knob here: it travels with the index and is read from its manifest."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CascadeSettings:
    """Knobs of the cascade (defaults are the tested ones).

    candidates : references kept per listing from the global search
    verify : SIFT-verify the best candidates of the listings that pass the gate (False only for ablations)
    verify_top : how many of the best candidates get SIFT verification
    regions : search image regions for doubtful listings
    region_grid : windows per side of the region lattice (2 -> the 4 quadrants + a centre crop; 3 -> 9 + 1)
    region_size : side of a region window as a fraction of the image side
    region_crops_kept : with region_grid 2, how many of the 5 crops go through the CNN: those whose feature-map
        windows (``features.pooling.WINDOWS``, the same layout) are most similar to a reference
    sift_long_side : the listing is resized to this longer side (pixels) for SIFT; references keep theirs
    sift_features : at most this many of the listing's strongest SIFT keypoints are kept
    settled_inliers : a listing whose global candidates verify with at least this many inliers skips the region
        search (0: always search regions)
    mirror_unless_inliers : verification skips the listing's mirror image when the listing as it is verifies a
        candidate with at least this many inliers (0: always check the mirror image too)
    layout_panels : also search each photo of a listing made of several (a grid, a photo beside a strip:
        ``layout.photo_panels``), when the region search runs for it
    layouts_never_dismissed : a listing the likeness would dismiss is first checked for a multi-photo layout
        (``layout.photo_panels``, under a millisecond for a typical photo) and, if it is one, goes through the
        expensive stages: a grid or collage of real photos looks unlike the catalog's listings as a whole, though
        one of its photos may be a copy
    finish_threads : listings whose last stages (verification after the region search, colour) run at once; the
        matrix products of verification and OpenCV's RANSAC release the GIL
    force_full : run the expensive stages for every listing, ignoring the gate (how a build collects the evidence
        its scorer is fitted on)
    """

    candidates: int = 20
    verify: bool = True
    verify_top: int = 6
    regions: bool = True
    region_grid: int = 2
    region_size: float = 0.5
    region_crops_kept: int = 3
    sift_long_side: int = 320
    sift_features: int = 1000
    settled_inliers: int = 40
    mirror_unless_inliers: int = 40
    layout_panels: bool = True
    layouts_never_dismissed: bool = True
    finish_threads: int = 2
    force_full: bool = False
