"""Index versions on disk: a self-describing folder, published atomically.

Layout of an index folder::

    INDEX_DIR/
      CURRENT                      name of the published version, vNNNNNN (replaced atomically)
      versions/
        v000001/
          manifest.json            format, model fingerprint, dims, counts, file hashes, creation time
          manifest.sha256          sha256 of manifest.json (``sha256sum -c`` format), written after it
          references.csv           id, brand, path (relative to the catalog root), sha256
          vectors.faiss            whitened reference vectors, ids = reference ids
          raw_descriptors.npy      float32 (n, D) raw descriptors, kept so whitening can be refitted
          whitening.npz            mean (D,), projection (D, d)
          background.npy           float32 (m, d) whitened background-photo vectors
          local_features.npz       packed SIFT features of the references (features.sift.pack_features)
          shared_keypoints.npz     keypoints each reference shares with other brands (shared_keypoints.py)
          likeness.npz             raw descriptors of the build's synthetic listings, float16 (likeness.py)
          thumbnails.npz           small JPEG of each reference, for reports and the colour check
          hue_histograms.npz       the thumbnails' hue histograms (features.colour.hue_histogram)
          scorer.json              calibrated models and the operating threshold

A version is written into a temporary folder, fsynced, renamed into ``versions/``, and only then is ``CURRENT``
replaced (write + fsync + ``os.replace``). A reader that opened a version keeps reading it; a crash at any moment
leaves the previous version published and loadable.

Leases: a reader holds a version with a ``Lease`` (a shared ``flock`` on its manifest.json, kept while the loaded
version lives); ``collect_garbage`` deletes a version only under an exclusive lock on the same file, so it skips the
versions a live process has open. Where ``fcntl`` is missing there are no leases (and no writer lock).
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
import re
import shutil
import uuid
import weakref

from ..errors import IndexCorruptError, MatcherError
from ..inputs.images import file_sha256

FORMAT_VERSION = 9  # 2: shared_keypoints.npz; 3: the scorer reads brand-prototype features; 4: colour check;
#                    5: hue agreement; 6: colour patch difference; 7: scorer calibrated on 3 region crops of 5;
#                    8: colour mismatch share; 9: inlier counts above chance level (cascade.evidence.CHANCE_INLIERS)
POINTER = "CURRENT"
VERSIONS = "versions"
MANIFEST = "manifest.json"
SEAL = "manifest.sha256"  # the sha256 of manifest.json, beside it (``manifest.read_manifest`` checks it)
SEALED_KEY = "manifest_hash_file"  # a sealed manifest names its seal file, so a deleted seal is noticed
VERSION_NAME = re.compile(r"v[0-9]+")  # what CURRENT may name: a folder directly inside versions/
TEMP_PREFIX = ".tmp-"
REFERENCE_FIELDS = ["id", "brand", "path", "sha256"]
LOCK = ".lock"
KEEP_VERSIONS = 3  # versions kept after a publish unless the index or the caller says otherwise

log = logging.getLogger("matcher.index")


@dataclass(frozen=True)
class ReferenceRecord:
    """One genuine reference photo in an index."""

    id: int
    brand: str
    path: str
    sha256: str


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_references(path: Path, references: list[ReferenceRecord]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(REFERENCE_FIELDS)
        for r in references:
            writer.writerow([r.id, r.brand, r.path, r.sha256])


def read_references(path: Path) -> list[ReferenceRecord]:
    with open(path, newline="", encoding="utf-8") as f:
        return [ReferenceRecord(int(r["id"]), r["brand"], r["path"], r["sha256"]) for r in csv.DictReader(f)]


def versions_dir(index_dir: Path) -> Path:
    return Path(index_dir) / VERSIONS


def current_version(index_dir: Path) -> Path | None:
    """Folder of the published version, or None if the index folder has none (no ``CURRENT``).

    ``CURRENT`` must name a version folder directly inside ``versions/`` (``vNNNNNN``: no path, no ``..``, not a
    symbolic link); anything else is IndexCorruptError, never a folder elsewhere loaded as the index.
    """
    pointer = Path(index_dir) / POINTER
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{pointer}: unreadable ({exc})") from None
    folder = versions_dir(index_dir) / name
    if not VERSION_NAME.fullmatch(name) or folder.is_symlink():
        raise IndexCorruptError(f"{pointer}: names {name[:80]!r}, not a version folder inside {VERSIONS}/ "
                                "(vNNNNNN); the pointer is damaged")
    return folder


def list_versions(index_dir: Path) -> list[Path]:
    """Published-or-old version folders, oldest first (temporary folders excluded)."""
    root = versions_dir(index_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("v"))


def new_version_folder(index_dir: Path) -> Path:
    """A fresh temporary folder inside ``versions/`` to write a version into."""
    root = versions_dir(index_dir)
    root.mkdir(parents=True, exist_ok=True)
    temp = root / f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}"
    temp.mkdir()
    return temp


def next_version_name(index_dir: Path) -> str:
    """The name the next publish gives its version: one more than the highest existing, vNNNNNN (exact for a
    writer holding ``writer_lock``)."""
    existing = list_versions(index_dir)
    return f"v{1 + max((int(p.name[1:]) for p in existing if p.name[1:].isdigit()), default=0):06d}"


def publish(index_dir: Path, temp_folder: Path, manifest: dict, *, keep: int = KEEP_VERSIONS) -> Path:
    """Seal a written version: record file hashes in manifest.json, fsync, rename, switch CURRENT.

    Returns the published version folder. Older versions beyond ``keep`` are removed afterwards.
    """
    index_dir = Path(index_dir)
    files = {p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size}
             for p in sorted(temp_folder.iterdir()) if p.is_file()}
    write_manifest(temp_folder, dict(manifest, format_version=FORMAT_VERSION, files=files))
    for p in temp_folder.iterdir():
        _fsync_path(p)
    _fsync_path(temp_folder)
    final = versions_dir(index_dir) / next_version_name(index_dir)
    os.rename(temp_folder, final)
    _fsync_path(versions_dir(index_dir))
    pointer_temp = index_dir / f"{POINTER}.{uuid.uuid4().hex[:8]}.tmp"
    with open(pointer_temp, "w", encoding="utf-8") as f:
        f.write(final.name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(pointer_temp, index_dir / POINTER)
    _fsync_path(index_dir)
    collect_garbage(index_dir, keep=keep)
    return final


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write ``manifest.json`` into a version folder and seal it: its sha256 in ``manifest.sha256`` (the manifest
    names the seal file, ``SEALED_KEY``). The caller fsyncs both."""
    text = json.dumps(dict(manifest, **{SEALED_KEY: SEAL}), indent=2, sort_keys=True) + "\n"
    data = text.encode("utf-8")
    (folder / MANIFEST).write_bytes(data)
    (folder / SEAL).write_text(f"{hashlib.sha256(data).hexdigest()}  {MANIFEST}\n", encoding="utf-8")


def collect_garbage(index_dir: Path, *, keep: int = KEEP_VERSIONS) -> list[Path]:
    """Remove temporary debris and all but the newest ``keep`` versions (never the published one, never one a live
    process holds with a ``Lease``: those are skipped, logged, and removed by a later collection)."""
    index_dir = Path(index_dir)
    removed = []
    current = current_version(index_dir)
    root = versions_dir(index_dir)
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(TEMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    for p in index_dir.glob(f"{POINTER}.*.tmp"):
        p.unlink(missing_ok=True)
    old = [p for p in list_versions(index_dir) if current is None or p.name != current.name]
    for p in old[: max(0, len(old) - (keep - 1))]:
        with _claimed(p) as claimed:
            if not claimed:
                log.warning("%s: kept, a running process has this version open", p)
                continue
            shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def versions_to_keep(manifest: dict, keep: int | None = None) -> int:
    """``keep`` when given (at least 1), else the index's ``build_settings.keep_versions``, else KEEP_VERSIONS."""
    if keep is not None:
        return max(1, int(keep))
    return int(manifest.get("build_settings", {}).get("keep_versions", KEEP_VERSIONS))


@contextlib.contextmanager
def writer_lock(index_dir: Path):
    """Exclusive advisory lock on an index folder (no-op where fcntl is missing or the folder does not exist)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    if not Path(index_dir).is_dir():
        yield  # opening the index raises IndexNotFoundError
        return
    with open(Path(index_dir) / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MatcherError(f"{index_dir}: another build/add/remove/gc is changing this index; "
                               "retry when it has finished") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Lease:
    """A reader's hold on a version folder: a shared ``flock`` on its manifest.json, released by ``release()``, when
    the lease is garbage-collected, or by the OS when the process dies. While it is held, ``collect_garbage`` (in
    any process) leaves the folder alone. No file is created; the folder may be read-only. Without ``fcntl``, or
    when the manifest is missing, the lease holds nothing (the version then opens or fails as it would anyway).
    """

    def __init__(self, fd: int | None = None):
        self._fd = fd
        self._closer = weakref.finalize(self, os.close, fd) if fd is not None else None

    @classmethod
    def take(cls, folder: Path) -> "Lease":
        """A shared lease on ``folder``; waits while a collection is deleting it (then the folder is gone)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return cls()
        try:
            fd = os.open(Path(folder) / MANIFEST, os.O_RDONLY)
        except OSError:
            return cls()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:  # a file system without locks: no lease, as without fcntl
            os.close(fd)
            return cls()
        return cls(fd)

    @property
    def held(self) -> bool:
        return self._closer is not None and self._closer.alive

    def release(self) -> None:
        if self._closer is not None:
            self._closer()  # closes the descriptor once, which drops the lock

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def in_use(folder: Path) -> bool:
    """Whether a live process holds a ``Lease`` on the version ``folder`` (False without fcntl)."""
    with _claimed(folder) as claimed:
        return not claimed


@contextlib.contextmanager
def _claimed(folder: Path):
    """Yields True while this process holds the version ``folder`` exclusively (no lease on it), else False."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield True
        return
    fd = None
    for flags in (os.O_RDWR, os.O_RDONLY):
        try:
            fd = os.open(Path(folder) / MANIFEST, flags)
            break
        except PermissionError:
            continue
        except OSError:  # no manifest: nobody can have opened it
            yield True
            return
    if fd is None:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError:  # no locks on this file system: behave as without fcntl
            pass
        yield True
    finally:
        os.close(fd)
