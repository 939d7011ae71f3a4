"""The references of an index version in memory: vectors, FAISS index, local features, thumbnails.

Everything the cascade's evidence stages read, without the scorer (which is fitted on evidence collected from
these) and without the manifest (which is written when a version is published).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
import threading
import zipfile
import zlib

import numpy as np

from . import store
from ..errors import IndexCorruptError
from ..features.colour import HUE_BINS, hue_histogram, thumbnail_pixels
from ..features.sift import LocalFeatures, pack_features, unpack_features
from .feedback_bank import FEEDBACK_FILE, FEEDBACK_FILES, FeedbackBank
from .likeness import LIKENESS_FILE, ListingLikeness
from .manifest import verified
from .prototypes import BrandPrototypes
from .shared_keypoints import SharedKeypoints, pack_shared, unpack_shared
from .store import ReferenceRecord
from .vectors import VectorIndex
from .whitening import Whitening

THUMBNAILS = "thumbnails.npz"
HUE_HISTOGRAMS = "hue_histograms.npz"  # the thumbnails' hue histograms, so that a scan need not compute them
COLOUR_CACHE = 512  # references whose thumbnail pixels a loaded version keeps decoded (tens of KB each)
# the files ``load`` reads: each must be listed in the manifest (the optional ones when present)
REQUIRED_FILES = ("references.csv", "vectors.faiss", "raw_descriptors.npy", "whitening.npz", "background.npy",
                  "local_features.npz", "shared_keypoints.npz")
OPTIONAL_FILES = (LIKENESS_FILE, THUMBNAILS, HUE_HISTOGRAMS, *FEEDBACK_FILES)
# what a damaged file makes numpy, zipfile, csv or FAISS raise (the hashes catch damage before; these name it anyway)
READ_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, EOFError, MemoryError,
               zipfile.BadZipFile, zlib.error)


@dataclass
class ReferenceIndex:
    """The references of an index version, searchable.

    references : the references table, ids ascending
    vectors : whitened reference vectors float32 (n, d), row i belongs to references[i]
    raw_descriptors : float32 (n, D), kept to refit whitening
    background : whitened background-photo vectors float32 (m, d)
    local_features : one LocalFeatures per reference, same order
    shared_keypoints : per reference, the keypoints other brands share (``shared_keypoints.py``), same order
    prototypes : each brand's references averaged (``prototypes.py``), derived from ``vectors`` on creation;
        None when ``with_prototypes`` is False
    thumbnails : reference id -> small JPEG (``inputs.images.thumbnail_jpeg``) for reports; filled when building and
        saving, not loaded by ``open`` (use ``load_thumbnails``)
    hue_histograms : reference id -> hue histogram of its thumbnail (``features.colour.hue_histogram``), or None
        for a grey photo; computed when saving, loaded by ``open`` (use ``reference_hues``)
    likeness : raw descriptors of the synthetic listings made from the references (``likeness.py``), for the gate;
        empty for an index saved before them
    folder : the version folder the files were read from (thumbnails are read from it on demand); None in memory
    manifest_files : the version manifest's ``files`` (size and sha256 per file), so that files read on demand are
        checked like those read at open; None in memory
    lease : the ``store.Lease`` that keeps garbage collection away from ``folder`` while this lives; None in memory
    with_prototypes : the cascade compares listings with brand prototypes; False only for an index built without
        them (an ablation), whose scorer never saw the prototype features
    colour_check : the cascade compares the colours of verified matches; False only for an index built without it
    colour_cache : reference id -> decoded thumbnail pixels, the COLOUR_CACHE most recently used
        (``reference_pixels``)
    feedback : the analysts' feedback (``feedback_bank.py``): negative examples, which references are known
        counterfeit photos rather than genuine ones, which are disabled, the decision log
    negative_vectors : float32 (m, d), the negative examples' whitened descriptors, derived on creation
    """

    references: list[ReferenceRecord]
    vectors: np.ndarray
    raw_descriptors: np.ndarray
    whitening: Whitening
    background: np.ndarray
    local_features: list[LocalFeatures]
    shared_keypoints: SharedKeypoints
    index: VectorIndex
    folder: Path | None = None
    manifest_files: dict | None = field(default=None, repr=False, compare=False)
    lease: store.Lease | None = field(default=None, repr=False, compare=False)
    thumbnails: dict[int, bytes] = field(default_factory=dict)
    hue_histograms: dict[int, np.ndarray | None] = field(default_factory=dict)
    likeness: ListingLikeness | None = None
    with_prototypes: bool = True
    colour_check: bool = True
    feedback: FeedbackBank = field(default_factory=FeedbackBank)
    row_of_id: dict[int, int] = field(init=False)
    prototypes: BrandPrototypes | None = field(init=False)
    colour_cache: OrderedDict = field(init=False, repr=False)
    negative_vectors: np.ndarray = field(init=False, repr=False)
    _colour_lock: threading.Lock = field(init=False, repr=False)

    def __post_init__(self):
        self.row_of_id = {r.id: i for i, r in enumerate(self.references)}
        genuine = np.array([r.id not in self.feedback.known_fakes for r in self.references], bool)
        self.prototypes = (BrandPrototypes.of(self.vectors, [r.brand for r in self.references],
                                              None if genuine.all() else genuine)
                           if self.with_prototypes else None)
        raw = self.feedback.negative_raw.reshape(-1, self.raw_descriptors.shape[1])
        self.negative_vectors = self.whitening.apply(raw) if len(raw) else np.zeros((0, self.whitening.dim), np.float32)
        self.colour_cache, self._colour_lock = OrderedDict(), threading.Lock()
        if self.likeness is None:
            self.likeness = ListingLikeness.empty(self.raw_descriptors.shape[1])

    @property
    def brands(self) -> dict[str, int]:
        """Genuine reference count per brand, sorted by brand name (known fakes are not counted)."""
        return _count_brands(r for r in self.references if r.id not in self.feedback.known_fakes)

    @property
    def known_fake_counts(self) -> dict[str, int]:
        """Known counterfeit photos per brand (``feedback_bank.py``), sorted by brand name."""
        return _count_brands(r for r in self.references if r.id in self.feedback.known_fakes)

    def reference(self, ref_id: int) -> ReferenceRecord:
        return self.references[self.row_of_id[ref_id]]

    # ---------------------------------------------------------------- writing
    def save_into(self, folder: Path) -> None:
        """Write the references' files into a version folder (the scorer and manifest.json are written beside them
        by ``building.publishing``)."""
        store.write_references(folder / "references.csv", self.references)
        self.index.save(folder / "vectors.faiss")
        np.save(folder / "raw_descriptors.npy", self.raw_descriptors)
        np.savez(folder / "whitening.npz", **self.whitening.to_arrays())
        np.save(folder / "background.npy", self.background)
        np.savez(folder / "local_features.npz", **pack_features(self.local_features))
        np.savez(folder / "shared_keypoints.npz", **pack_shared(self.shared_keypoints))
        if len(self.likeness):
            self.likeness.save(folder / LIKENESS_FILE)
        if self.thumbnails:
            arrays = {str(i): np.frombuffer(jpeg, np.uint8) for i, jpeg in self.thumbnails.items()}
            np.savez(folder / THUMBNAILS, **arrays)
            ids = [r.id for r in self.references if r.id in self.thumbnails]
            rows = [np.full(HUE_BINS, np.nan) if h is None else h for h in self.reference_hues(ids)]
            np.savez(folder / HUE_HISTOGRAMS, ids=np.asarray(ids, np.int64),
                     histograms=np.asarray(rows, np.float64).reshape(len(ids), HUE_BINS))
        self.feedback.save_into(folder)

    def load_thumbnails(self) -> dict[int, bytes]:
        """Reference id -> JPEG bytes, read from the version folder ({} for an index made before thumbnails);
        checked against the manifest first (IndexCorruptError naming the file when damaged)."""
        if not self.thumbnails and self.folder is not None:
            self.thumbnails = _read_thumbnails(self.folder, self.manifest_files)
        return self.thumbnails

    def reference_pixels(self, ref_id: int) -> np.ndarray | None:
        """The reference's thumbnail as ``features.colour.thumbnail_pixels`` (uint8 (h, w, 3)), decoded once while
        it stays among the COLOUR_CACHE most recently used; None without a thumbnail. Safe from several threads."""
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
        """Hue histograms (``features.colour.hue_histogram``) of references' thumbnails, as stored or else computed once
        per reference; None for a grey photo or a reference without a thumbnail."""
        for ref_id in ref_ids:
            if ref_id not in self.hue_histograms:  # only then are the thumbnails needed
                pixels = self.reference_pixels(ref_id)
                self.hue_histograms[ref_id] = None if pixels is None else hue_histogram(pixels)
        return [self.hue_histograms[ref_id] for ref_id in ref_ids]

    # ---------------------------------------------------------------- reading
    @classmethod
    def load(cls, folder: Path, *, with_prototypes: bool = True, colour_check: bool = True,
             manifest_files: dict | None = None, lease: store.Lease | None = None) -> "ReferenceIndex":
        """Read the references' files of a version folder (checked against its manifest by the caller, which
        passes the manifest's ``files`` for the files read later, and the lease it holds on the folder).

        Raises IndexCorruptError naming a file that does not parse (READ_ERRORS), or ValueError when the
        references and vectors disagree (``IndexVersion.open`` turns it into IndexCorruptError).
        """
        references = read_index_file(folder / "references.csv", store.read_references)
        index = read_index_file(folder / "vectors.faiss", VectorIndex.load)
        whitening = read_index_file(folder / "whitening.npz", lambda path: Whitening.from_arrays(_arrays(path)))
        ids, vectors = index.reconstruct_all()
        if [r.id for r in references] != sorted(int(i) for i in ids):
            raise ValueError("references.csv and vectors.faiss hold different ids")
        return cls(
            references=references, vectors=vectors[np.argsort(ids)],
            raw_descriptors=read_index_file(folder / "raw_descriptors.npy", np.load), whitening=whitening,
            background=read_index_file(folder / "background.npy", np.load),
            local_features=read_index_file(folder / "local_features.npz", lambda path: unpack_features(_arrays(path))),
            shared_keypoints=read_index_file(folder / "shared_keypoints.npz",
                                    lambda path: unpack_shared(_arrays(path), len(references))),
            index=index, folder=folder, manifest_files=manifest_files, lease=lease,
            hue_histograms=read_index_file(folder / HUE_HISTOGRAMS, _read_hue_histograms),
            likeness=read_index_file(folder / LIKENESS_FILE, lambda path: ListingLikeness.load(path, whitening.mean.shape[0])),
            with_prototypes=with_prototypes, colour_check=colour_check,
            feedback=read_index_file(folder / FEEDBACK_FILE,
                                     lambda path: FeedbackBank.load(path.parent, whitening.mean.shape[0])),
        )


def _count_brands(references) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in references:
        counts[r.brand] = counts.get(r.brand, 0) + 1
    return dict(sorted(counts.items()))


def read_index_file(path: Path, read):
    """``read(path)``, a damaged file's error (READ_ERRORS: numpy, zipfile, csv, FAISS, JSON) as IndexCorruptError
    naming the file."""
    try:
        return read(path)
    except READ_ERRORS as exc:
        raise IndexCorruptError(f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:100]})") from None


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, read now (and the file closed)."""
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def _read_thumbnails(folder: Path, manifest_files: dict | None) -> dict[int, bytes]:
    """Reference id -> JPEG bytes from a version folder's thumbnails.npz ({} when it has none), checked against
    ``manifest_files`` (the manifest's ``files``) before it is read; IndexCorruptError when damaged."""
    path = verified(folder, manifest_files, THUMBNAILS)
    if path is None:
        return {}
    return read_index_file(path, _jpegs)


def _jpegs(path: Path) -> dict[int, bytes]:
    with np.load(path) as arrays:  # one array at a time: a large catalog's thumbnails are not held twice
        return {int(key): arrays[key].tobytes() for key in arrays.files}


def _read_hue_histograms(path: Path) -> dict[int, np.ndarray | None]:
    """Reference id -> hue histogram (None for a grey photo) from a version's hue_histograms.npz ({} without it)."""
    if not path.is_file():
        return {}
    with np.load(path) as arrays:
        ids, histograms = arrays["ids"], arrays["histograms"]
    if histograms.shape[1:] != (HUE_BINS,):
        return {}  # made with other bins: computed again as needed
    return {int(i): None if np.isnan(h).any() else h for i, h in zip(ids, histograms)}
