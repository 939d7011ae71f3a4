"""A published index version, loaded: its manifest, references and scorer.

``IndexVersion.open(index_dir, fingerprint)`` reads the published version, checks its manifest against its seal and
every file against the manifest (``manifest.py``: sizes and sha256, before anything parses them), refuses an index
made by another model, weights, preprocessing or format, and holds a lease on the folder (``store.Lease``) so that
no garbage collection deletes it while the loaded version lives.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

from . import store
from ..errors import ImageError, IndexCorruptError
from ..inputs import load_image, thumbnail_jpeg
from .manifest import check_compatible, check_version_files, published_folder, read_manifest, verified
from .references import (OPTIONAL_FILES, READ_ERRORS, REQUIRED_FILES, ReferenceIndex, _read_thumbnails,
                         read_index_file)
from .scorer import Scorer

SCORER_FILE = "scorer.json"
OPEN_ATTEMPTS = 3  # a version garbage-collected between reading CURRENT and leasing it: read CURRENT again


@dataclass(frozen=True)
class IndexVersion:
    """A published index version, loaded.

    manifest : the version's manifest.json (``manifest.py``)
    folder : the version folder
    refs : its references, searchable (``references.py``); holds the version's lease
    scorer : its calibrated models and thresholds (``scorer.py``)
    """

    manifest: dict
    folder: Path
    refs: ReferenceIndex
    scorer: Scorer

    @property
    def typical_prices(self) -> dict[str, float]:
        """Brand -> typical price, from the catalog's brands.csv kept in the index ({} when it had none)."""
        return dict(self.manifest.get("typical_prices", {}))

    def close(self) -> None:
        """Give up the lease on the folder (a garbage collection may then delete it; thumbnails not read yet can
        no longer be read). Everything else stays loaded. Dropping the last reference does the same."""
        if self.refs.lease is not None:
            self.refs.lease.release()

    @classmethod
    def open(cls, index_dir: str | Path, fingerprint: dict | None = None) -> "IndexVersion":
        """Load the published version of ``index_dir``, with the evidence its build recorded (prototypes, colour).

        fingerprint : the embedder's ``fingerprint()``; when given, a different one is refused.

        Raises IndexNotFoundError without an index, IndexMismatchError for another format or model, and
        IndexCorruptError (one line, naming the file) for a damaged pointer, manifest or file: checked before the
        file is parsed, so a damaged index never gives results.
        """
        index_dir = Path(index_dir)
        folder, lease = _leased_version(index_dir)
        try:
            manifest = read_manifest(folder)
            if fingerprint is not None:
                check_compatible(manifest, fingerprint, index_dir)
            check_version_files(folder, manifest, required=(*REQUIRED_FILES, SCORER_FILE), optional=OPTIONAL_FILES)
            built = manifest.get("build_settings", {})
            scorer = read_index_file(folder / SCORER_FILE,
                                     lambda path: Scorer.from_dict(json.loads(path.read_text(encoding="utf-8"))))
            try:  # each file's parse errors name the file (ReferenceIndex.load); this is what is left
                refs = ReferenceIndex.load(folder, with_prototypes=built.get("brand_prototypes", True),
                                           colour_check=built.get("colour_check", True),
                                           manifest_files=manifest.get("files", {}), lease=lease)
            except READ_ERRORS as exc:
                raise IndexCorruptError(f"{folder}: cannot read index files ({type(exc).__name__}: "
                                        f"{str(exc)[:120]})") from None
            _check_counts(folder, manifest, refs)
        except BaseException:
            lease.release()
            raise
        return cls(manifest=manifest, folder=folder, refs=refs, scorer=scorer)


def _leased_version(index_dir: Path) -> tuple[Path, store.Lease]:
    """The published version folder with a lease taken on it. A collection may delete a version between our
    reading CURRENT and leasing it only if CURRENT moved on meanwhile: then CURRENT is read again."""
    for _ in range(OPEN_ATTEMPTS):
        folder = published_folder(index_dir)
        lease = store.Lease.take(folder)
        if (folder / store.MANIFEST).is_file() or store.current_version(index_dir) == folder:
            return folder, lease  # leased, or damaged where it stands (read_manifest says how)
        lease.release()
    return folder, store.Lease.take(folder)


def _check_counts(folder: Path, manifest: dict, refs: ReferenceIndex) -> None:
    """The manifest's counts, brands and dimensions are those of the files (a check that also covers the manifests
    published before they were sealed)."""
    found = {("counts", "references"): sum(refs.brands.values()), ("counts", "brands"): len(refs.brands),
             ("counts", "background"): int(len(refs.background)), ("brands",): refs.brands,
             ("dim",): int(refs.vectors.shape[1]), ("raw_dim",): int(refs.raw_descriptors.shape[1])}
    for keys, value in found.items():
        recorded = manifest
        for key in keys:  # a key the manifest does not have (an older index) is not checked
            recorded = recorded[key] if isinstance(recorded, dict) and key in recorded else value
        if recorded != value:
            raise IndexCorruptError(f"{folder / store.MANIFEST}: {'.'.join(keys)} is {str(recorded)[:60]}, "
                                    f"but the version's files hold {str(value)[:60]}")


def reference_thumbnails(index_dir: str | Path) -> dict[str, bytes]:
    """Reference path (as in results' ``reference``) -> JPEG thumbnail of the published version.

    The files are checked against the manifest before they are read (IndexCorruptError naming a damaged one).
    An index made before thumbnails were stored falls back to the photos in its catalog folder, when it still
    exists; references found in neither are left out.
    """
    folder, lease = _leased_version(Path(index_dir))
    with lease:
        manifest = read_manifest(folder)
        files = manifest.get("files", {})
        path = verified(folder, files, "references.csv")
        references = read_index_file(path if path is not None else folder / "references.csv", store.read_references)
        stored = _read_thumbnails(folder, files)
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
