"""Build an index version from a catalog folder: decode -> embed -> whiten -> index -> local features ->
calibrate -> publish.

Whitening, background statistics and the scorer are fitted on this catalog's own synthetic listings
(``calibration.py``) at build time. They are part of the version, so every published version is self-consistent.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..cascade import CascadeSettings, collect_evidence
from ..errors import CatalogError
from ..features import Embedder, extract_local_features
from ..index import ReferenceIndex, ReferenceRecord, store
from ..index.shared_keypoints import find_shared_keypoints
from ..index.vectors import VectorIndex
from ..index.whitening import Whitening, fit_whitening
from ..inputs import decode_catalog_images, read_brand_prices, scan_catalog, thumbnail_jpeg
from ..inputs.everyday import everyday_photos
from .calibration import (SyntheticListing, add_gate, catalog_likeness, fit_scorer, make_listings, source_references,
                          training_rows)
from .publishing import Progress, publish_version, reporter


@dataclass(frozen=True)
class BuildSettings:
    """Index-build knobs, recorded in the manifest. ``seed`` makes the synthetic listings, hence the whole build,
    reproducible.

    whitening_dim : output dimension of the PCA-whitening (0 = no whitening, for ablations)
    whitening_shrinkage : eigenvalue shrinkage, as a fraction of the mean eigenvalue
    copies_per_reference : edited copies made of each reference (``make_listings`` of ``calibration.py``)
    background_listings : synthetic listings made from everyday photos
    background_left_out : fit the scorer on each everyday listing's background similarity without the listings
        cut from its own photo (the index's background vectors are these listings: with them, every one scores
        1.0, while real everyday photos score 0.1-0.5). Off: it lowered devbench's metrics over three seeds
        (docs/benchmarks.md, "Scorer and features")
    recoloured_share : share of the references that give a recoloured sister listing
    sister_weight : how many times the scorer counts each sister listing. Marketplace traffic holds far more
        products the catalog lacks that look like one it has than genuine listings, and one sister per reference
        under-represents them; at 16, look-alikes outweigh the genuine synthetic listings 4 to 1 (the sweep
        behind the value: docs/benchmarks.md)
    shared_neighbours : other-brand references each reference is checked against for shared keypoints
        (``index.shared_keypoints``; 0 = none marked, every inlier counts as distinctive, for ablations)
    brand_prototypes : compare listings with brand prototypes (``index.prototypes``); False only for ablations.
        Scans of the index follow it (recorded in the manifest)
    colour_check : compare the colours of verified matches (``features.colour``); False only for ablations.
        Scans of the index follow it
    colour_signs : fit the full brand model with the colour features' signs constrained
        (``cascade.evidence.BRAND_FEATURE_SIGNS``); False only for ablations
    listing_likeness : keep the synthetic listings' descriptors and fit the gate's likeness threshold
        (``index.likeness``); False only for ablations
    gate_recall : share of the synthetic listings the full cascade detects that the gate must let through
    likeness_recall : share of those listings the likeness threshold must keep
    edits_per_added_reference : synthetic listings (edited copies and one re-photographed view) made of each
        photo ``index add`` adds, so that the gate's likeness knows the new brands' kind of photo
    keep_versions : versions an index keeps after each publish (the published one included)
    """

    whitening_dim: int = 256
    whitening_shrinkage: float = 1.0
    copies_per_reference: int = 3
    background_listings: int = 120
    background_left_out: bool = False
    recoloured_share: float = 0.5
    sister_weight: float = 16.0
    shared_neighbours: int = 10
    brand_prototypes: bool = True
    colour_check: bool = True
    colour_signs: bool = True
    listing_likeness: bool = True
    gate_recall: float = 0.99
    likeness_recall: float = 0.999
    edits_per_added_reference: int = 4
    seed: int = 1234
    keep_versions: int = store.KEEP_VERSIONS

    def as_dict(self) -> dict:
        return asdict(self)


def synthetic_listings(images, references: list[ReferenceRecord], settings: BuildSettings) -> list[SyntheticListing]:
    """The synthetic listings (``make_listings`` of ``calibration.py``) a build makes of its decoded reference
    ``images`` (same order as ``references``); the same ones for the same ``settings.seed``."""
    return make_listings(images, [r.brand for r in references], [r.id for r in references],
                         everyday_photos(), np.random.default_rng(settings.seed),
                         copies_per_reference=settings.copies_per_reference,
                         background_count=settings.background_listings, recoloured_share=settings.recoloured_share)


def build_index(catalog_dir: str | Path, out_dir: str | Path, *, embedder: Embedder | None = None,
                settings: BuildSettings = BuildSettings(), progress: Progress | None = None,
                runtime: str = "auto", threads: int | None = None) -> Path:
    """Build an index of the genuine references in ``catalog_dir`` and publish it as a new version of ``out_dir``.

    embedder : the CNN to embed with; by default ``Embedder(runtime=runtime, threads=threads)``, made once the
        catalog has been read (a bad catalog is refused before the model loads)
    Returns the published version folder. The previous version (if any) stays untouched until the new one is
    complete; a crash leaves it published.
    """
    say = reporter(progress)
    catalog_dir, out_dir = Path(catalog_dir), Path(out_dir)
    items, images, skipped = decode_catalog_images(catalog_dir, scan_catalog(catalog_dir))
    if not items:
        raise CatalogError(f"{catalog_dir}: no reference image could be decoded")
    typical_prices = read_brand_prices(catalog_dir, {item.brand for item in items})  # fail before the CNN work
    embedder = embedder or Embedder(runtime=runtime, threads=threads)
    say(f"embedding {len(images)} references of {len({i.brand for i in items})} brands")
    raw = embedder.describe(images)
    references = [ReferenceRecord(i, item.brand, item.path, item.sha256) for i, item in enumerate(items)]

    say("generating synthetic listings for whitening and calibration")
    listings = synthetic_listings(images, references, settings)
    listing_raw = embedder.describe([s.image for s in listings])
    whitening = _fit_whitening(np.vstack([raw, listing_raw]), settings)
    vectors = whitening.apply(raw)
    index = VectorIndex.for_vectors(whitening.dim, len(references))
    index.add(vectors, np.asarray([r.id for r in references]))
    say("extracting local features of the references")
    local = [extract_local_features(im) for im in images]
    say("finding keypoints that brands share (logos of product families)")
    refs = ReferenceIndex(
        references=references, vectors=vectors, raw_descriptors=raw, whitening=whitening,
        background=whitening.apply(listing_raw[[s.kind == "background" for s in listings]]), local_features=local,
        shared_keypoints=find_shared_keypoints(vectors, [r.brand for r in references], local,
                                               neighbours=settings.shared_neighbours),
        index=index, thumbnails={r.id: thumbnail_jpeg(im) for r, im in zip(references, images)},
        likeness=catalog_likeness(listings, listing_raw) if settings.listing_likeness else None,
        with_prototypes=settings.brand_prototypes, colour_check=settings.colour_check,
    )
    say(f"calibrating scores on {len(listings)} synthetic listings")
    evidence = collect_evidence(refs, embedder, [s.image for s in listings], CascadeSettings(force_full=True),
                                exclude=[set(s.exclude) for s in listings])
    if settings.background_left_out:
        leave_background_out(evidence, listings, whitening.apply(listing_raw), refs.background)
    if len(refs.likeness):  # each listing's likeness without the listings made from its own references
        hidden = [source_references(s) for s in listings]
        for ev, likeness in zip(evidence, refs.likeness.leaving_out(listing_raw, hidden)):
            ev.likeness = float(likeness)
    scorer, calibration = fit_scorer(training_rows(evidence, listings, sister_weight=settings.sister_weight),
                                     colour_signs=settings.colour_signs)
    scorer, gate_summary = add_gate(scorer, evidence, listings, gate_recall=settings.gate_recall,
                                    likeness_recall=settings.likeness_recall)
    calibration.update(gate_summary)

    out_dir.mkdir(parents=True, exist_ok=True)
    with store.writer_lock(out_dir):  # one writer at a time; readers are never blocked
        published = publish_version(out_dir, refs, scorer, embedder.fingerprint(), {
            "catalog": str(catalog_dir.resolve()),
            "build_settings": settings.as_dict(),
            "calibration": calibration,
            "skipped_references": skipped,
            "typical_prices": typical_prices,
        }, keep=settings.keep_versions)
    say(f"published {published}")
    return published


def leave_background_out(evidence, listings: list[SyntheticListing], vectors: np.ndarray,
                         background: np.ndarray) -> None:
    """Set each everyday listing's ``background_similarity`` to its best cosine with the background vectors of
    the other everyday photos (``vectors``: the listings' whitened descriptors (n, d); ``background``: those of
    the everyday listings, in their order (m, d))."""
    photos = np.asarray([s.photo for s in listings if s.kind == "background"])
    for ev, listing, vector in zip(evidence, listings, vectors):
        if listing.kind == "background":
            others = background[photos != listing.photo]
            ev.background_similarity = float((others @ vector).max()) if len(others) else -1.0


def _fit_whitening(samples: np.ndarray, settings: BuildSettings) -> Whitening:
    """PCA-whitening fitted on raw descriptors (n, D), or the identity when ``settings.whitening_dim`` is 0."""
    if settings.whitening_dim > 0:
        return fit_whitening(samples, dim=settings.whitening_dim, shrinkage=settings.whitening_shrinkage)
    dim = samples.shape[1]
    return Whitening(np.zeros(dim, np.float32), np.eye(dim, dtype=np.float32))
