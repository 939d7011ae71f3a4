"""Build an index version from a catalog folder: decode -> embed -> whiten -> index -> local features -> calibrate.

Whitening, background statistics and the scorer are fitted on this catalog's own synthetic listings
(``calibrate.py``) at build time. They are part of the version, so every published version is self-consistent.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import augment, store
from .calibrate import (BACKGROUND_LISTINGS, COPIES_PER_REFERENCE, SISTER_WEIGHT, SyntheticListing, add_gate,
                        catalog_likeness, fit_scorer, make_listings, source_references, training_rows)
from .catalog import scan_catalog
from .embed import Embedder
from .errors import CatalogError, ImageError
from .brands import read_brand_prices
from .images import load_image, thumbnail_jpeg
from .index import VectorIndex
from .pipeline import CascadeSettings, collect_evidence
from .store import ReferenceRecord
from .shared import NEIGHBOURS, find_shared_keypoints
from .verify import extract_local_features
from .version import IndexVersion, describe_manifest
from .whiten import Whitening, fit_whitening

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSettings:
    """Index-build knobs. ``seed`` makes the synthetic listings, hence the whole build, reproducible.

    whitening_dim : output dimension of the PCA-whitening (0 = no whitening, for ablations)
    whitening_shrinkage : eigenvalue shrinkage, as a fraction of the mean eigenvalue
    shared_neighbours : other-brand references each reference is checked against for shared keypoints
        (``shared.py``; 0 = none marked, every inlier counts as distinctive, for ablations)
    brand_prototypes : calibrate with brand prototypes (``prototypes.py``); False only for ablations, whose
        scans then use ``CascadeSettings(prototypes=False)`` too
    copies_per_reference, background_listings : synthetic listings made per reference / from everyday photos
        (``calibrate.make_listings``; the defaults, and why: ``calibrate.COPIES_PER_REFERENCE``, ``BACKGROUND_LISTINGS``)
    recoloured_share : share of the references that give a recoloured sister listing (``calibrate.make_listings``)
    sister_weight : how many times the scorer counts each sister listing (``calibrate.SISTER_WEIGHT``, and why)
    colour_check : calibrate with the colour check of verified matches (``colour.py``); False only for ablations,
        whose scans then use ``CascadeSettings(colour=False)`` too
    colour_signs : fit the full brand model with the colour features' signs constrained
        (``evidence.BRAND_FEATURE_SIGNS``); False only for ablations
    listing_likeness : keep the synthetic listings' descriptors and fit the gate's likeness threshold
        (``likeness.py``); False only for ablations
    """

    whitening_dim: int = 256
    whitening_shrinkage: float = 1.0
    copies_per_reference: int = COPIES_PER_REFERENCE
    background_listings: int = BACKGROUND_LISTINGS
    recoloured_share: float = 0.5
    sister_weight: float = SISTER_WEIGHT
    shared_neighbours: int = NEIGHBOURS
    brand_prototypes: bool = True
    colour_check: bool = True
    colour_signs: bool = True
    listing_likeness: bool = True
    seed: int = 1234
    keep_versions: int = 3

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def decode_catalog(catalog_dir: Path):
    """Decode every catalog photo: (catalog items, RGB images, skipped), the first two in the same order;
    undecodable photos are skipped and reported (path, status, error)."""
    kept, images, skipped = [], [], []
    for item in scan_catalog(catalog_dir):
        try:
            images.append(load_image(item.file, name=f"{catalog_dir}/{item.path}"))
            kept.append(item)
        except ImageError as exc:
            log.warning("skipping reference %s", exc)
            skipped.append({"path": item.path, "status": exc.kind, "error": str(exc)})
    if not kept:
        raise CatalogError(f"{catalog_dir}: no reference image could be decoded")
    return kept, images, skipped


def synthetic_listings(images, references: list[ReferenceRecord], settings: BuildSettings) -> list[SyntheticListing]:
    """The synthetic listings (``calibrate.make_listings``) a build makes of its decoded reference ``images``
    (same order as ``references``); the same ones for the same ``settings.seed``."""
    return make_listings(images, [r.brand for r in references], [r.id for r in references],
                         augment.background_photos(), np.random.default_rng(settings.seed),
                         copies_per_reference=settings.copies_per_reference,
                         background_count=settings.background_listings, recoloured_share=settings.recoloured_share)


def calibration_cascade(settings: BuildSettings) -> CascadeSettings:
    """How a build collects the synthetic listings' evidence: every stage forced on, pieces as ``settings``."""
    return CascadeSettings(force_full=True, prototypes=settings.brand_prototypes, colour=settings.colour_check)


def build_index(catalog_dir: str | Path, out_dir: str | Path, *, embedder: Embedder | None = None,
                settings: BuildSettings = BuildSettings(),
                progress: Callable[[str], None] | None = None) -> Path:
    """Build an index of the genuine references in ``catalog_dir`` and publish it as a new version of ``out_dir``.

    Returns the published version folder. The previous version (if any) stays untouched until the new one is
    complete; a crash leaves it published.
    """
    say = progress or (lambda message: log.info(message))
    catalog_dir, out_dir = Path(catalog_dir), Path(out_dir)
    embedder = embedder or Embedder()
    items, images, skipped = decode_catalog(catalog_dir)
    typical_prices = read_brand_prices(catalog_dir, {item.brand for item in items})  # fail before the CNN work
    say(f"embedding {len(images)} references of {len({i.brand for i in items})} brands")
    raw = embedder.describe(images)
    references = [ReferenceRecord(i, item.brand, item.path, item.sha256) for i, item in enumerate(items)]
    ids = [r.id for r in references]
    brands = [r.brand for r in references]

    say("generating synthetic listings for whitening and calibration")
    listings = synthetic_listings(images, references, settings)
    listing_raw = embedder.describe([s.image for s in listings])
    background_raw = listing_raw[[s.kind == "background" for s in listings]]
    if settings.whitening_dim > 0:
        whitening = fit_whitening(np.vstack([raw, listing_raw]), dim=settings.whitening_dim,
                                  shrinkage=settings.whitening_shrinkage)
    else:  # ablation: raw descriptors
        whitening = Whitening(np.zeros(raw.shape[1], np.float32), np.eye(raw.shape[1], dtype=np.float32))
    vectors = whitening.apply(raw)
    index = VectorIndex.for_vectors(whitening.dim, len(ids))
    index.add(vectors, np.asarray(ids))
    say("extracting local features of the references")
    local = [extract_local_features(im) for im in images]
    say("finding keypoints that brands share (logos of product families)")
    version = IndexVersion(
        manifest={}, references=references, vectors=vectors, raw_descriptors=raw, whitening=whitening,
        background=whitening.apply(background_raw), local_features=local,
        shared_keypoints=find_shared_keypoints(vectors, brands, local, neighbours=settings.shared_neighbours),
        scorer=None,  # fitted below, from evidence that never reads it (force_full skips the gate)
        index=index, thumbnails={r.id: thumbnail_jpeg(im) for r, im in zip(references, images)},
        likeness=catalog_likeness(listings, listing_raw) if settings.listing_likeness else None,
    )
    say(f"calibrating scores on {len(listings)} synthetic listings")
    evidence = collect_evidence(version, embedder, [s.image for s in listings], calibration_cascade(settings),
                                exclude=[set(s.exclude) for s in listings])
    if len(version.likeness):  # each listing's likeness without the listings made from its own references
        hidden = [source_references(s) for s in listings]
        for ev, likeness in zip(evidence, version.likeness.leaving_out(listing_raw, hidden)):
            ev.likeness = float(likeness)
    rows = training_rows(evidence, listings, sister_weight=settings.sister_weight)
    version.scorer, calibration = fit_scorer(rows, colour_signs=settings.colour_signs)
    version.scorer, gate_summary = add_gate(version.scorer, evidence, listings)
    calibration.update(gate_summary)

    out_dir.mkdir(parents=True, exist_ok=True)
    with store.writer_lock(out_dir):  # one writer at a time; readers are never blocked
        temp = store.new_version_folder(out_dir)
        version.save_into(temp)
        manifest = describe_manifest(version, embedder.fingerprint(), {
            "catalog": str(catalog_dir.resolve()),
            "build_settings": settings.as_dict(),
            "calibration": calibration,
            "skipped_references": skipped,
            "typical_prices": typical_prices,
        })
        published = store.publish(out_dir, temp, manifest, keep=settings.keep_versions)
    say(f"published {published}")
    return published
