"""One index version in memory: everything a scan needs, loaded from (or saved to) a version folder.

``IndexVersion.open(index_dir, fingerprint)`` reads the published version, checks every file against the
manifest's hashes and refuses an index made by another model, weights, preprocessing or format.
"""
from __future__ import annotations

import json
import platform
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import store
from .errors import ImageError, IndexCorruptError, IndexMismatchError, IndexNotFoundError
from .images import file_sha256, load_image, thumbnail_jpeg
from .index import METRIC, VectorIndex
from .likeness import LIKENESS_FILE, ListingLikeness
from .colour import HUE_BINS, hue_histogram, thumbnail_pixels
from .prototypes import BrandPrototypes
from .score import Scorer
from .shared import SharedKeypoints, pack_shared, unpack_shared
from .store import ReferenceRecord
from .verify import LocalFeatures, pack_features, unpack_features
from .whiten import Whitening

THUMBNAILS = "thumbnails.npz"
HUE_HISTOGRAMS = "hue_histograms.npz"  # the thumbnails' hue histograms, so that a scan need not compute them
FINGERPRINT_KEYS = ("descriptor", "backbone_timm", "weights_sha256", "preprocessing", "runtime")
COLOUR_CACHE = 512  # references whose thumbnail pixels a loaded version keeps decoded (~58 KB each)


@dataclass
class IndexVersion:
    """A loaded index version.

    references : the references table, ids ascending
    vectors : whitened reference vectors float32 (n, d), row i belongs to references[i]
    raw_descriptors : float32 (n, D), kept to refit whitening
    background : whitened background-photo vectors float32 (m, d)
    local_features : one LocalFeatures per reference, same order
    shared_keypoints : per reference, the keypoints other brands share (``shared.py``), same order
    prototypes : each brand's references averaged (``prototypes.py``), derived from ``vectors`` on creation
    thumbnails : reference id -> small JPEG (``images.thumbnail_jpeg``) for reports; filled when building and
        saving, not loaded by ``open`` (use ``load_thumbnails``)
    hue_histograms : reference id -> hue histogram of its thumbnail (``colour.hue_histogram``), or None for a grey
        photo; computed when saving, loaded by ``open`` (use ``reference_hues``)
    likeness : raw descriptors of the synthetic listings made from the references (``likeness.py``), for the gate;
        empty for an index saved before them
    colour_cache : reference id -> decoded thumbnail pixels, the COLOUR_CACHE most recently used
        (``reference_pixels``)
    """

    manifest: dict
    references: list[ReferenceRecord]
    vectors: np.ndarray
    raw_descriptors: np.ndarray
    whitening: Whitening
    background: np.ndarray
    local_features: list[LocalFeatures]
    shared_keypoints: SharedKeypoints
    scorer: Scorer | None  # None only while build.py fits it
    index: VectorIndex
    folder: Path | None = None
    thumbnails: dict[int, bytes] = field(default_factory=dict)
    hue_histograms: dict[int, np.ndarray | None] = field(default_factory=dict)
    likeness: ListingLikeness | None = None
    row_of_id: dict[int, int] = field(init=False)
    prototypes: BrandPrototypes = field(init=False)
    colour_cache: OrderedDict = field(init=False, repr=False)
    _colour_lock: threading.Lock = field(init=False, repr=False)

    def __post_init__(self):
        self.row_of_id = {r.id: i for i, r in enumerate(self.references)}
        self.prototypes = BrandPrototypes.of(self.vectors, [r.brand for r in self.references])
        self.colour_cache, self._colour_lock = OrderedDict(), threading.Lock()
        if self.likeness is None:
            self.likeness = ListingLikeness.empty(self.raw_descriptors.shape[1])

    @property
    def brands(self) -> dict[str, int]:
        """Reference count per brand, sorted by brand name."""
        counts: dict[str, int] = {}
        for r in self.references:
            counts[r.brand] = counts.get(r.brand, 0) + 1
        return dict(sorted(counts.items()))

    def reference(self, ref_id: int) -> ReferenceRecord:
        return self.references[self.row_of_id[ref_id]]

    # ---------------------------------------------------------------- writing
    def save_into(self, folder: Path) -> None:
        """Write every file of the version into ``folder`` (manifest.json is written by store.publish)."""
        store.write_references(folder / "references.csv", self.references)
        self.index.save(folder / "vectors.faiss")
        np.save(folder / "raw_descriptors.npy", self.raw_descriptors)
        np.savez(folder / "whitening.npz", **self.whitening.to_arrays())
        np.save(folder / "background.npy", self.background)
        np.savez(folder / "local_features.npz", **pack_features(self.local_features))
        np.savez(folder / "shared_keypoints.npz", **pack_shared(self.shared_keypoints))
        if len(self.likeness):
            self.likeness.save(folder / LIKENESS_FILE)
        (folder / "scorer.json").write_text(json.dumps(self.scorer.to_dict(), indent=1) + "\n", encoding="utf-8")
        if self.thumbnails:
            arrays = {str(i): np.frombuffer(jpeg, np.uint8) for i, jpeg in self.thumbnails.items()}
            np.savez(folder / THUMBNAILS, **arrays)
            ids = [r.id for r in self.references if r.id in self.thumbnails]
            rows = [np.full(HUE_BINS, np.nan) if h is None else h for h in self.reference_hues(ids)]
            np.savez(folder / HUE_HISTOGRAMS, ids=np.asarray(ids, np.int64),
                     histograms=np.asarray(rows, np.float64).reshape(len(ids), HUE_BINS))

    def load_thumbnails(self) -> dict[int, bytes]:
        """Reference id -> JPEG bytes, read from the version folder ({} for an index made before thumbnails)."""
        if not self.thumbnails and self.folder is not None:
            self.thumbnails = _read_thumbnails(self.folder)
        return self.thumbnails

    def reference_pixels(self, ref_id: int) -> np.ndarray | None:
        """The reference's thumbnail as ``colour.thumbnail_pixels`` (uint8 (h, w, 3)), decoded once while it stays
        among the COLOUR_CACHE most recently used; None without a thumbnail. Safe from several threads."""
        with self._colour_lock:
            if ref_id in self.colour_cache:
                self.colour_cache.move_to_end(ref_id)
                return self.colour_cache[ref_id]
        jpeg = self.load_thumbnails().get(ref_id)
        pixels = thumbnail_pixels(jpeg) if jpeg else None
        with self._colour_lock:
            self.colour_cache[ref_id] = pixels
            while len(self.colour_cache) > COLOUR_CACHE:
                self.colour_cache.popitem(last=False)
        return pixels

    def reference_hues(self, ref_ids) -> list[np.ndarray | None]:
        """Hue histograms (``colour.hue_histogram``) of references' thumbnails, as stored or else computed once
        per reference; None for a grey photo or a reference without a thumbnail."""
        for ref_id in ref_ids:
            if ref_id not in self.hue_histograms:  # only then are the thumbnails needed
                pixels = self.reference_pixels(ref_id)
                self.hue_histograms[ref_id] = None if pixels is None else hue_histogram(pixels)
        return [self.hue_histograms[ref_id] for ref_id in ref_ids]

    # ---------------------------------------------------------------- reading
    @classmethod
    def open(cls, index_dir: str | Path, fingerprint: dict | None = None) -> "IndexVersion":
        """Load the published version of ``index_dir``.

        fingerprint : the embedder's ``fingerprint()``; when given, a different one is refused.
        """
        index_dir = Path(index_dir)
        folder, manifest = published_manifest(index_dir)
        if fingerprint is not None:
            check_compatible(manifest, fingerprint, index_dir)
        check_files(folder, manifest)
        try:
            references = store.read_references(folder / "references.csv")
            index = VectorIndex.load(folder / "vectors.faiss")
            whitening = Whitening.from_arrays(np.load(folder / "whitening.npz"))
            scorer = Scorer.from_dict(json.loads((folder / "scorer.json").read_text(encoding="utf-8")))
            ids, vectors = index.reconstruct_all()
            order = np.argsort(ids)
            version = cls(
                manifest=manifest, references=references, vectors=vectors[order],
                raw_descriptors=np.load(folder / "raw_descriptors.npy"), whitening=whitening,
                background=np.load(folder / "background.npy"),
                local_features=unpack_features(np.load(folder / "local_features.npz")),
                shared_keypoints=unpack_shared(np.load(folder / "shared_keypoints.npz"), len(references)),
                scorer=scorer, index=index, folder=folder, hue_histograms=_read_hue_histograms(folder),
                likeness=ListingLikeness.load(folder / LIKENESS_FILE, whitening.mean.shape[0]),
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise IndexCorruptError(f"{folder}: cannot read index files ({exc})") from None
        if [r.id for r in references] != sorted(int(i) for i in ids):
            raise IndexCorruptError(f"{folder}: references.csv and vectors.faiss hold different ids")
        return version


def reference_thumbnails(index_dir: str | Path) -> dict[str, bytes]:
    """Reference path (as in results' ``reference``) -> JPEG thumbnail of the published version.

    An index made before thumbnails were stored falls back to the photos in its catalog folder, when it still
    exists; references found in neither are left out.
    """
    folder, manifest = published_manifest(index_dir)
    references = store.read_references(folder / "references.csv")
    stored = _read_thumbnails(folder)
    if stored:
        return {r.path: stored[r.id] for r in references if r.id in stored}
    catalog = Path(manifest.get("catalog", ""))
    found = {}
    for r in references:
        try:
            found[r.path] = thumbnail_jpeg(load_image(catalog / r.path))
        except ImageError:
            continue
    return found


def _read_thumbnails(folder: Path) -> dict[int, bytes]:
    """Reference id -> JPEG bytes from a version folder's thumbnails.npz ({} when it has none)."""
    if not (folder / THUMBNAILS).is_file():
        return {}
    with np.load(folder / THUMBNAILS) as arrays:
        return {int(key): arrays[key].tobytes() for key in arrays.files}


def _read_hue_histograms(folder: Path) -> dict[int, np.ndarray | None]:
    """Reference id -> hue histogram (None for a grey photo) from a version folder ({} when it has none)."""
    if not (folder / HUE_HISTOGRAMS).is_file():
        return {}
    with np.load(folder / HUE_HISTOGRAMS) as arrays:
        ids, histograms = arrays["ids"], arrays["histograms"]
    if histograms.shape[1:] != (HUE_BINS,):
        return {}  # made with other bins: computed again as needed
    return {int(i): None if np.isnan(h).any() else h for i, h in zip(ids, histograms)}


def published_manifest(index_dir: str | Path) -> tuple[Path, dict]:
    """(folder, manifest) of the published version of ``index_dir``; IndexNotFoundError when there is none."""
    index_dir = Path(index_dir)
    folder = store.current_version(index_dir)
    if folder is None:
        what = "is not an index folder (no CURRENT pointer)" if index_dir.exists() else "not found"
        raise IndexNotFoundError(f"{index_dir}: index {what}; build one with `matcher index build`")
    return folder, read_manifest(folder)


def read_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: manifest missing") from None
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path}: manifest unreadable ({exc})") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path}: manifest is not a JSON object")
    fmt = manifest.get("format_version")
    if fmt != store.FORMAT_VERSION:
        newer = isinstance(fmt, int) and fmt > store.FORMAT_VERSION
        raise IndexMismatchError(
            f"{path}: index format {fmt!r}, this matcher reads format {store.FORMAT_VERSION}"
            + ("; upgrade matcher" if newer else "; rebuild the index with `matcher index build`")
        )
    return manifest


def check_compatible(manifest: dict, fingerprint: dict, index_dir: Path) -> None:
    """Refuse an index whose vectors were made differently from ``fingerprint``; names both sides."""
    theirs = manifest.get("fingerprint", {})
    for key in FINGERPRINT_KEYS:
        if theirs.get(key) != fingerprint.get(key):
            raise IndexMismatchError(
                f"{index_dir}: index built with {key}={_short(theirs.get(key))}, "
                f"but this matcher uses {key}={_short(fingerprint.get(key))}; rebuild with `matcher index build`"
            )


def region_runtime_of(fingerprint: dict) -> str | None:
    """The runtime family that embedded an index's region crops, from its manifest's ``fingerprint`` (indexes
    saved before the crops had their own record embedded them with the CNN's runtime)."""
    return fingerprint.get("region_runtime", fingerprint.get("runtime"))


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def check_files(folder: Path, manifest: dict, *, hashes: bool = False) -> None:
    """Every file the manifest lists exists with its size (and, with hashes=True, its sha256)."""
    for name, meta in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise IndexCorruptError(f"{path}: listed in manifest.json but missing")
        if path.stat().st_size != meta.get("bytes"):
            raise IndexCorruptError(f"{path}: size {path.stat().st_size} bytes, manifest says {meta.get('bytes')}")
        if hashes and file_sha256(path) != meta.get("sha256"):
            raise IndexCorruptError(f"{path}: content does not match the sha256 in manifest.json")


def describe_manifest(version: IndexVersion, fingerprint: dict, extra: dict) -> dict:
    """The manifest of a version about to be published (store.publish adds format and file hashes)."""
    import faiss
    import torch

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
        "dim": int(version.vectors.shape[1]),
        "raw_dim": int(version.raw_descriptors.shape[1]),
        "metric": METRIC,
        "index_type": version.index.kind,
        "counts": {"references": len(version.references), "brands": len(version.brands),
                   "background": int(len(version.background))},
        "brands": version.brands,
        "operating_threshold": version.scorer.threshold,
        "library_versions": {"python": platform.python_version(), "torch": torch.__version__,
                             "faiss": faiss.__version__, "numpy": np.__version__},
        **extra,
    }
