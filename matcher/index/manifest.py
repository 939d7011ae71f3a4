"""Index manifests: read the published one, refuse another model or format, check the files it lists.

A version folder's ``manifest.json`` records how its vectors were made (the embedder's fingerprint), its build
settings, dimensions, counts, brands, the operating threshold and every file's size and sha256. Nothing in a
version folder is trusted blindly:

- the manifest is *sealed*: ``manifest.sha256`` beside it holds its sha256 (``store.write_manifest``), checked
  every time it is read (``read_manifest``), before anything in it is believed (its format version included);
- every file the manifest lists is checked against its size and sha256 before anything parses it
  (``check_version_files``, by ``IndexVersion.open``; ``verified`` for the files read later, the thumbnails);
  any difference is a one-line IndexCorruptError naming the file.

Hashing every file at every open would cost a second read of the largest files (hundreds of MB to GB for a large
catalog), so files of ``ALWAYS_HASHED_BYTES`` or more are hashed once per process per file identity:
``FILE_HASHES`` (a ``FileHashes``) remembers the sha256 of such a file under its path, device, inode, size, mtime
and ctime (a write changes mtime and ctime, and ctime cannot be set back). Smaller files are hashed every time.
``matcher index verify`` (``check_files(..., hashes=True)``) hashes everything afresh.

Indexes published before manifests were sealed (no ``manifest.sha256``, no ``manifest_hash_file`` key) still open:
their manifest is taken as written and every file is checked against it as above; ``IndexVersion.open`` also checks
the manifest's counts, brands and dimensions against the files. A sealed manifest whose seal is missing is corrupt.
"""
from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
import hashlib
import json
import os
from pathlib import Path
import threading
import time

from . import store
from ..errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from ..inputs import file_sha256

FINGERPRINT_KEYS = ("descriptor", "backbone_timm", "weights_sha256", "preprocessing", "runtime")
ALWAYS_HASHED_BYTES = 1 << 20  # files below this are hashed at every open (< 1 ms each); larger ones once per identity
RACY_NS = 2_000_000_000  # a file changed this recently may change again within its timestamp's tick: not remembered
REMEMBERED_FILES = 4096  # file identities FILE_HASHES keeps (least recently used dropped)
HASH_THREADS = max(1, min(4, os.cpu_count() or 1))  # files hashed at once (hashlib releases the GIL) ...
PARALLEL_HASH_BYTES = 32 << 20  # ... when the files besides the largest to hash are this large


class FileHashes:
    """The sha256 of large files this process has hashed, remembered by file identity (thread-safe).

    ``sha256(path)`` hashes a file of ``always_below`` bytes or more once and answers from memory while its
    identity (resolved path, device, inode, size, mtime_ns, ctime_ns) stays the same; smaller files are hashed every
    time. A hash is remembered only if the file did not change while it was hashed and had not changed for
    ``RACY_NS`` before (a write within the same timestamp tick could otherwise keep the identity).
    """

    def __init__(self, always_below: int = ALWAYS_HASHED_BYTES, capacity: int = REMEMBERED_FILES):
        self.always_below = always_below
        self.capacity = capacity
        self._known: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def identity(path: Path, st: os.stat_result) -> tuple:
        return (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def remembered(self, path: Path) -> str | None:
        """The file's sha256 if it is remembered under its current identity, else None (OSError propagates)."""
        path = Path(path)
        st = path.stat()
        if st.st_size < self.always_below:
            return None
        key = self.identity(path, st)
        with self._lock:
            digest = self._known.get(key)
            if digest is not None:
                self._known.move_to_end(key)
            return digest

    def sha256(self, path: Path) -> str:
        """The file's hex sha256 (OSError propagates)."""
        path = Path(path)
        started = time.time_ns()
        before = path.stat()
        if before.st_size < self.always_below:
            return file_sha256(path)
        key = self.identity(path, before)
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
                return self._known[key]
        digest = file_sha256(path)
        settled = started - max(before.st_mtime_ns, before.st_ctime_ns) > RACY_NS
        if settled and self.identity(path, path.stat()) == key:
            with self._lock:
                self._known[key] = digest
                while len(self._known) > self.capacity:
                    self._known.popitem(last=False)
        return digest

    def clear(self) -> None:
        with self._lock:
            self._known.clear()


FILE_HASHES = FileHashes()  # the process's one cache of large files' hashes (see the module docstring)


def published_folder(index_dir: str | Path) -> Path:
    """The folder of the published version of ``index_dir``; IndexNotFoundError when there is none."""
    index_dir = Path(index_dir)
    folder = store.current_version(index_dir)
    if folder is None:
        what = "is not an index folder (no CURRENT pointer)" if index_dir.exists() else "not found"
        raise IndexNotFoundError(f"{index_dir}: index {what}; build one with `matcher index build`")
    return folder


def published_manifest(index_dir: str | Path) -> tuple[Path, dict]:
    """(folder, manifest) of the published version of ``index_dir``; IndexNotFoundError when there is none."""
    folder = published_folder(index_dir)
    return folder, read_manifest(folder)


def read_manifest(folder: Path) -> dict:
    """A version folder's manifest, checked against its seal (``manifest.sha256``) first, then its format version.

    IndexCorruptError when it is missing, unreadable or does not match its seal; IndexMismatchError for another
    format. A manifest without a seal (published before seals) is returned as written.
    """
    path = folder / store.MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: manifest missing") from None
    except OSError as exc:
        raise IndexCorruptError(f"{path}: manifest unreadable ({_short(str(exc))})") from None
    sealed = _check_seal(folder, data)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise IndexCorruptError(f"{path}: manifest unreadable ({_short(str(exc))})") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path}: manifest is not a JSON object")
    if not sealed and store.SEALED_KEY in manifest:
        raise IndexCorruptError(f"{folder / store.SEAL}: missing, but manifest.json says it was sealed")
    fmt = manifest.get("format_version")
    if fmt != store.FORMAT_VERSION:
        newer = isinstance(fmt, int) and fmt > store.FORMAT_VERSION
        raise IndexMismatchError(
            f"{path}: index format {fmt!r}, this matcher reads format {store.FORMAT_VERSION}"
            + ("; upgrade matcher" if newer else "; rebuild the index with `matcher index build`")
        )
    return manifest


def is_sealed(folder: Path) -> bool:
    """Whether a version folder's manifest has a seal (published since manifests were sealed)."""
    return (folder / store.SEAL).is_file()


def _check_seal(folder: Path, data: bytes) -> bool:
    """Whether the manifest ``data`` has a seal; IndexCorruptError when it does not match it."""
    seal = folder / store.SEAL
    try:
        recorded = seal.read_text(encoding="ascii").split()
    except FileNotFoundError:
        return False  # published before seals, unless the manifest says otherwise (read_manifest)
    except (OSError, ValueError) as exc:
        raise _unreadable(seal, exc) from None
    if recorded[:2] != [hashlib.sha256(data).hexdigest(), store.MANIFEST]:
        raise IndexCorruptError(f"{folder / store.MANIFEST}: content does not match the sha256 in {store.SEAL}")
    return True


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


def model_name(fingerprint: dict) -> str:
    """What made an index's vectors, short: ``backbone@weights digest (12 hex)/runtime family``, as results rows,
    the service and ``matcher index info`` show it."""
    return (f"{fingerprint.get('backbone_timm')}@{str(fingerprint.get('weights_sha256'))[:12]}"
            f"/{fingerprint.get('runtime')}")


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _listed(folder: Path, manifest: dict) -> dict[str, dict]:
    """The manifest's ``files``, each name a plain file name (a name with a path in it is corruption)."""
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        raise IndexCorruptError(f"{folder / store.MANIFEST}: 'files' is not a JSON object")
    for name, meta in files.items():
        if name in ("", ".", "..") or Path(name).name != name or "\\" in name or not isinstance(meta, dict):
            raise IndexCorruptError(f"{folder / store.MANIFEST}: bad file entry {_short(name)}")
    return files


def check_file(path: Path, meta: dict, *, hashes: FileHashes | None = FILE_HASHES) -> None:
    """``path`` has the size and sha256 of its manifest entry ``meta``; hashed through ``hashes`` (None: afresh)."""
    _check_size(path, meta)
    _check_digest(path, meta, _digest(path, hashes))


def _check_size(path: Path, meta: dict) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: listed in manifest.json but missing") from None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if not path.is_file():
        raise IndexCorruptError(f"{path}: listed in manifest.json but not a file")
    if st.st_size != meta.get("bytes"):
        raise IndexCorruptError(f"{path}: size {st.st_size} bytes, manifest says {meta.get('bytes')}")


def _digest(path: Path, hashes: FileHashes | None) -> str:
    try:
        return hashes.sha256(path) if hashes is not None else file_sha256(path)
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _remembered(path: Path) -> str | None:
    try:
        return FILE_HASHES.remembered(path)
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: Exception) -> IndexCorruptError:
    return IndexCorruptError(f"{path}: unreadable ({_short(str(exc))})")


def _check_digest(path: Path, meta: dict, digest: str) -> None:
    if digest != meta.get("sha256"):
        raise IndexCorruptError(f"{path}: content does not match the sha256 in manifest.json")


def check_files(folder: Path, manifest: dict, *, hashes: bool = False) -> None:
    """Every file the manifest lists exists with its size (and, with hashes=True, its sha256, hashed afresh)."""
    for name, meta in _listed(folder, manifest).items():
        if hashes:
            check_file(folder / name, meta, hashes=None)
        else:
            _check_size(folder / name, meta)


def check_version_files(folder: Path, manifest: dict, *, required=(), optional=()) -> None:
    """Open-time check of a version folder: the files a reader reads are listed in the manifest (``required``
    always; ``optional`` when present), and every listed file has its size, then its sha256 (``FILE_HASHES``)."""
    files = _listed(folder, manifest)
    for name in required:
        if name not in files:
            raise IndexCorruptError(f"{folder / name}: not listed in manifest.json")
    for name in optional:
        if name not in files and (folder / name).exists():
            raise IndexCorruptError(f"{folder / name}: present but not listed in manifest.json")
    for name, meta in files.items():  # sizes first: a truncated file is named without reading any other
        _check_size(folder / name, meta)
    digests = {name: _remembered(folder / name) for name in files}
    todo = sorted((name for name, digest in digests.items() if digest is None),
                  key=lambda name: -files[name].get("bytes", 0))  # the largest first
    if sum(files[name].get("bytes", 0) for name in todo[1:]) >= PARALLEL_HASH_BYTES:
        with ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="index-hash") as pool:
            digests.update(zip(todo, pool.map(lambda name: _digest(folder / name, FILE_HASHES), todo)))
    else:
        digests.update((name, _digest(folder / name, FILE_HASHES)) for name in todo)
    for name, meta in files.items():
        _check_digest(folder / name, meta, digests[name])


def verified(folder: Path, files: dict | None, name: str) -> Path | None:
    """``folder / name`` checked against its manifest entry in ``files`` (the manifest's ``files``) before it is
    read; None when the manifest does not list it and it does not exist. With ``files`` None (a version made in
    memory, or read without its manifest) the path is returned unchecked."""
    path = folder / name
    if files is None:
        return path if path.exists() else None
    if name not in files:
        if path.exists():
            raise IndexCorruptError(f"{path}: present but not listed in manifest.json")
        return None
    check_file(path, files[name])
    return path
