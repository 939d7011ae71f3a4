"""Index lifecycle without a rebuild: add (or replace) brands, remove brands, list versions, collect garbage.

Every operation loads the published version, makes the new version's complete ``ReferenceIndex`` in memory and
publishes it with ``publish_version`` of ``publishing.py`` (temporary folder, fsync, rename, atomic ``CURRENT``
switch), exactly as a build does: a crash at any moment leaves the previous version published and loadable, and
the next publish (or ``matcher index gc``) removes the temporary debris. Readers that opened a version keep reading it;
``Matcher.reload()`` picks up the new one.

What is fixed at build time. ``add_to_index`` and ``remove_from_index`` carry the version's whitening,
background vectors and calibrated scorer over unchanged; only ``matcher index build`` refits them. New references
are whitened with the index's existing whitening (fitted on generic product photos, their synthetic copies and
everyday photos, so it transfers to similar brands), and the scorer's features are relative (similarity margins
over the next reference and brand, votes, background similarity, SIFT inliers), so its calibration transfers to
the new brands. A catalog that differs a lot from the one the index was built on (another product domain, many
times more brands) deserves a rebuild.

Cost. ``add_to_index`` decodes, embeds (``embedder.describe``) and extracts SIFT features only for photos the
index does not hold yet; a photo whose sha256 is already indexed under the same brand keeps its id and features.
Each new photo also gets ``BuildSettings.edits_per_added_reference`` synthetic listings (edited copies, embedded too), so
that the gate's listing likeness (``index.likeness``) knows what listings of the new brands look like; removed
brands' synthetic listings leave with them. Writing the new version copies the index's files (I/O proportional
to the index, no CNN work).

Ids are stable and never reused: the manifest records ``next_id``; new references get ids from there.
Operations that change an index take an advisory lock (``INDEX_DIR/.lock``, released by the OS if the process
dies) and refuse to publish if ``CURRENT`` moved under them (e.g. a concurrent ``matcher index build``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image
import numpy as np

from . import augment
from ..cascade import load_embedder_for
from ..errors import CatalogError, IndexNotFoundError, MatcherError
from ..features import Embedder, extract_local_features
from ..index import IndexVersion, ReferenceIndex, ReferenceRecord, published_manifest, read_manifest, store
from ..index.feedback_bank import FeedbackBank
from ..index.likeness import ListingLikeness
from ..index.manifest import region_runtime_of
from ..index.shared_keypoints import find_shared_keypoints
from ..index.vectors import VectorIndex
from ..inputs import decode_catalog_images, read_brand_prices, scan_catalog, thumbnail_jpeg
from ..inputs.everyday import everyday_photos
from .build import BuildSettings
from .publishing import Progress, now, publish_version, reporter



def add_to_index(index_dir: str | Path, catalog_dir: str | Path, *, embedder: Embedder | None = None,
                 keep: int | None = None, progress: Progress | None = None) -> Path:
    """Add every brand of ``catalog_dir`` (``<brand>/<image>``) to the index, replacing brands of the same name.

    Only photos the index does not hold yet are decoded, embedded and SIFT-described; a photo already indexed
    under the same brand (same sha256) keeps its id. A replaced brand's other references are dropped. A photo
    identical to one indexed under another, kept brand is skipped (as a build keeps identical files once).
    Whitening, background vectors and the scorer are carried over (see the module docstring).

    embedder : defaults to the one the index's manifest describes; an index built by another model is refused.
    keep : versions kept after publishing (default: the index's ``keep_versions``).
    Returns the published version folder.
    """
    say = reporter(progress)
    index_dir, catalog_dir = Path(index_dir), Path(catalog_dir)
    with store.writer_lock(index_dir):
        embedder = embedder or load_embedder_for(index_dir)
        fingerprint = embedder.fingerprint()
        old = IndexVersion.open(index_dir, fingerprint)
        # the scorer is carried over, and with it the runtime of the region crops it was fitted on
        fingerprint["region_runtime"] = region_runtime_of(old.manifest.get("fingerprint", {}))
        items = scan_catalog(catalog_dir)
        brands = sorted({item.brand for item in items})
        prices = {b: p for b, p in old.manifest.get("typical_prices", {}).items() if b not in brands}
        prices.update(read_brand_prices(catalog_dir, brands))
        old_refs, fakes = old.refs.references, old.refs.feedback.known_fakes  # known fakes stay with their brand
        kept = {r.sha256: r for r in old_refs if r.brand not in brands and r.id not in fakes}
        same = {(r.brand, r.sha256): row for row, r in enumerate(old_refs) if r.id not in fakes}
        rows = [(r, True, row) for row, r in enumerate(old_refs) if r.brand not in brands or r.id in fakes]
        skipped = _skipped_outside(old.manifest, brands)
        to_decode, reused = [], 0
        for item in items:
            if item.sha256 in kept:
                other = kept[item.sha256]
                skipped.append({"path": item.path, "status": "duplicate",
                                "error": f"same file as {other.path} (brand {other.brand})"})
            elif (item.brand, item.sha256) in same:
                row = same[(item.brand, item.sha256)]
                rows.append((ReferenceRecord(old_refs[row].id, item.brand, item.path, item.sha256), True, row))
                reused += 1
            else:
                to_decode.append(item)
        decoded, fresh_images, undecodable = decode_catalog_images(catalog_dir, to_decode)
        skipped += undecodable
        first_id = _next_id(old)
        fresh = [ReferenceRecord(first_id + k, item.brand, item.path, item.sha256) for k, item in enumerate(decoded)]
        held = {record.brand for record, _, _ in rows if record.id not in fakes} | {record.brand for record in fresh}
        empty = [b for b in brands if b not in held]
        if empty:
            raise CatalogError(f"{catalog_dir}: no usable reference photo for brand(s) {', '.join(empty)} "
                               "(undecodable, or identical to photos of other indexed brands); nothing changed")
        say(f"embedding {len(fresh_images)} new references of {len(brands)} brands ({reused} already indexed)")
        raw = (embedder.describe(fresh_images) if fresh_images
               else np.zeros((0, old.refs.raw_descriptors.shape[1]), np.float32))
        local = [extract_local_features(im) for im in fresh_images]
        thumbnails = [thumbnail_jpeg(im) for im in fresh_images]
        likeness = _new_likeness(old, embedder, fresh_images, [r.id for r in fresh])
        refs = _assemble(old, rows + [(r, False, k) for k, r in enumerate(fresh)], raw, local, thumbnails, likeness)
        dropped = sum(1 for r in old_refs if r.brand in brands and r.id not in fakes) - reused
        entry = {"op": "add", "brands": brands, "catalog": str(catalog_dir.resolve()), "time": now(),
                 "added": len(fresh), "reused": reused, "dropped": dropped}
        published = _publish(index_dir, old, refs, fingerprint, entry, skipped, first_id + len(fresh), keep,
                             dict(sorted(prices.items())))
    say(f"published {published}")
    return published


def remove_from_index(index_dir: str | Path, brands: str | Iterable[str], *, keep: int | None = None,
                      progress: Progress | None = None) -> Path:
    """Remove brands (and all their references) from the index; returns the published version folder.

    Raises MatcherError naming an unknown brand (with the known ones), or when no brand would be left.
    """
    say = reporter(progress)
    index_dir = Path(index_dir)
    brands = sorted({brands} if isinstance(brands, str) else set(brands))
    if not brands:
        raise MatcherError(f"{index_dir}: no brand to remove given")
    with store.writer_lock(index_dir):
        old = IndexVersion.open(index_dir)
        known = old.refs.brands
        unknown = [b for b in brands if b not in known]
        if unknown:
            raise MatcherError(f"{index_dir}: no brand {', '.join(map(repr, unknown))} in the index; "
                               f"known brands: {', '.join(known)}")
        if set(brands) >= set(known):
            raise MatcherError(f"{index_dir}: cannot remove every brand ({', '.join(known)}): an index needs at "
                               "least one reference; build a new index instead")
        rows = [(r, True, row) for row, r in enumerate(old.refs.references) if r.brand not in brands]
        refs = _assemble(old, rows, np.zeros((0, old.refs.raw_descriptors.shape[1]), np.float32), [], [])
        entry = {"op": "remove", "brands": brands, "time": now(), "removed": len(old.refs.references) - len(rows)}
        prices = {b: p for b, p in old.manifest.get("typical_prices", {}).items() if b not in brands}
        published = _publish(index_dir, old, refs, old.manifest.get("fingerprint", {}), entry,
                             _skipped_outside(old.manifest, brands), _next_id(old), keep, prices)
    say(f"published {published}")
    return published


def index_versions(index_dir: str | Path) -> list[dict]:
    """The version folders of an index, oldest first: name, current, in_use (a live process holds it open, so
    garbage collection keeps it), created, counts and the last operation."""
    index_dir = Path(index_dir)
    if not store.versions_dir(index_dir).is_dir():
        raise IndexNotFoundError(f"{index_dir}: no index here (no versions/ folder)")
    current = store.current_version(index_dir)
    out = []
    for folder in store.list_versions(index_dir):
        info = {"name": folder.name, "current": current is not None and folder.name == current.name,
                "in_use": store.in_use(folder)}
        try:
            manifest = read_manifest(folder)
        except MatcherError as exc:  # an unpublished or damaged folder still gets listed
            out.append(dict(info, error=str(exc)))
            continue
        last = _history(manifest)[-1]
        out.append(dict(info, created=manifest.get("created"), op=last.get("op"),
                        brands=manifest.get("counts", {}).get("brands"),
                        references=manifest.get("counts", {}).get("references")))
    return out


def gc_index(index_dir: str | Path, *, keep: int | None = None) -> list[Path]:
    """Remove temporary debris and all but the newest ``keep`` versions (the published one always stays, and so
    does a version a live process holds open: ``store.Lease``).

    keep : default the index's ``keep_versions``. Returns the removed paths.
    """
    index_dir = Path(index_dir)
    _, manifest = published_manifest(index_dir)
    with store.writer_lock(index_dir):
        return store.collect_garbage(index_dir, keep=store.versions_to_keep(manifest, keep))


def edited_examples(images: Sequence[Image.Image], rng: np.random.Generator,
                    per_reference: int) -> tuple[list[Image.Image], list[int]]:
    """For references added to an index: ``per_reference`` synthetic listings per image (edited copies and
    a re-photographed view) and, for each, the position of its image in ``images``."""
    backgrounds = everyday_photos()
    out, owners = [], []
    for k, image in enumerate(images):
        for _ in range(per_reference - 1):
            out.append(augment.copy_edit(image, rng, backgrounds)[0])
            owners.append(k)
        out.append(augment.listing_edit(image, rng)[0])
        owners.append(k)
    return out, owners


def built_with(manifest: dict) -> BuildSettings:
    """The settings an index was built with, from its manifest (defaults for those it does not record)."""
    recorded = manifest.get("build_settings", {})
    return BuildSettings(**{name: recorded[name] for name in BuildSettings.__dataclass_fields__ if name in recorded})


def _history(manifest: dict) -> list[dict]:
    """The previous operations; an index made by a build starts with a 'build' entry."""
    history = list(manifest.get("history") or [])
    if not history:
        history.append({"op": "build", "brands": sorted(manifest.get("brands", {})), "time": manifest.get("created")})
    return history


def _skipped_outside(manifest: dict, brands) -> list[dict]:
    """The manifest's skipped-reference entries of brands other than ``brands``."""
    return [s for s in manifest.get("skipped_references", []) if s.get("path", "").split("/")[0] not in brands]


def _next_id(old: IndexVersion) -> int:
    recorded = int(old.manifest.get("next_id", 0))
    return max(recorded, 1 + max((r.id for r in old.refs.references), default=-1))


def _publish(index_dir: Path, old: IndexVersion, refs: ReferenceIndex, fingerprint: dict, entry: dict,
             skipped: list[dict], next_id: int, keep: int | None, typical_prices: dict[str, float]) -> Path:
    """Publish ``refs`` with ``old``'s scorer, unless CURRENT moved since ``old`` was opened."""
    current = store.current_version(index_dir)
    if current is None or current.name != old.folder.name:
        raise MatcherError(f"{index_dir}: the published version changed while this operation ran "
                           f"({old.folder.name} -> {current.name if current else 'none'}); run it again")
    previous = old.manifest
    extra = {key: previous[key] for key in ("catalog", "build_settings", "calibration") if key in previous}
    extra.update(skipped_references=skipped, history=_history(previous) + [entry], next_id=next_id,
                 typical_prices=typical_prices)
    old.close()  # everything needed from it is in ``refs``: its lease would keep it from the collection below
    return publish_version(index_dir, refs, old.scorer, fingerprint, extra,
                           keep=store.versions_to_keep(previous, keep))


def _assemble(old: IndexVersion, rows: list[tuple[ReferenceRecord, bool, int]], new_raw: np.ndarray,
              new_local: list, new_thumbnails: list[bytes],
              new_likeness: ListingLikeness | None = None, feedback: FeedbackBank | None = None) -> ReferenceIndex:
    """The references ``rows`` = (record, from_old, row): row of ``old`` if from_old, else row of ``new_raw`` /
    ``new_local`` / ``new_thumbnails``. Whitening and background are carried over from ``old``; the synthetic
    listings of ``index.likeness`` are those of the kept references plus ``new_likeness``; the analysts' feedback
    (``index.feedback_bank``) is ``feedback``, else ``old``'s as far as it applies to the kept references."""
    base = old.refs
    rows = sorted(rows, key=lambda r: r[0].id)
    new_vectors = base.whitening.apply(new_raw) if len(new_raw) else new_raw
    pick = [(base.raw_descriptors, base.local_features, base.vectors) if from_old else (new_raw, new_local, new_vectors)
            for _, from_old, _ in rows]
    vectors = np.asarray([src[2][row] for src, (_, _, row) in zip(pick, rows)], np.float32)
    vectors = vectors.reshape(len(rows), base.whitening.dim)
    raw = np.asarray([src[0][row] for src, (_, _, row) in zip(pick, rows)], np.float32)
    references = [record for record, _, _ in rows]
    old_thumbnails = base.load_thumbnails()
    thumbnails = {record.id: (old_thumbnails.get(base.references[row].id) if from_old else new_thumbnails[row])
                  for record, from_old, row in rows}
    index = VectorIndex.for_vectors(base.whitening.dim, len(references))
    index.add(vectors, np.asarray([r.id for r in references], np.int64))
    local = [src[1][row] for src, (_, _, row) in zip(pick, rows)]
    likeness = base.likeness.keeping({r.id for r in references})
    neighbours = built_with(old.manifest).shared_neighbours
    return ReferenceIndex(
        references=references, vectors=vectors,
        raw_descriptors=raw.reshape(len(rows), base.raw_descriptors.shape[1]), whitening=base.whitening,
        background=base.background, local_features=local,
        shared_keypoints=find_shared_keypoints(vectors, [r.brand for r in references], local, neighbours=neighbours),
        index=index, thumbnails={i: jpeg for i, jpeg in thumbnails.items() if jpeg},
        hue_histograms={record.id: base.hue_histograms[base.references[row].id] for record, from_old, row in rows
                        if from_old and base.references[row].id in base.hue_histograms},  # kept: not computed again
        likeness=likeness if new_likeness is None else likeness.plus(new_likeness),
        with_prototypes=base.with_prototypes, colour_check=base.colour_check,
        feedback=feedback if feedback is not None else base.feedback.keeping(
            {r.id for r in references}, {r.brand for r in references}),
    )


def _new_likeness(old: IndexVersion, embedder: Embedder, images: list, ref_ids: list[int]) -> ListingLikeness | None:
    """Synthetic listings (``edited_examples``) of references about to be added, so that the gate's likeness
    knows their kind of photo; None when the index keeps no likeness set (built before it)."""
    if not len(old.refs.likeness) or not images:
        return None
    settings = built_with(old.manifest)
    seed = settings.seed + min(ref_ids)  # reproducible per add
    examples, owners = edited_examples(images, np.random.default_rng(seed), settings.edits_per_added_reference)
    return ListingLikeness(embedder.describe(examples), np.asarray([ref_ids[k] for k in owners], np.int64))
