"""The listings' descriptors kept beside a results file, for clusters and for re-scans of history.

A scan writes, beside ``RESULTS``:

* ``RESULTS.descriptors.npy``: float16 (n, rows, d), row = the listing's ``position``: its
  ``MatchResult.descriptor`` (``cascade.descriptors``: whitened global descriptor, feature-map windows, the region
  crops embedded, the raw CNN descriptor), in the space of the index version that scanned it. A listing that failed
  to decode (or has no row) has zeros. About 9 KB per listing (d 256, D 1280): a million listings make 9 GB
  on disk, read back as a memory map, never whole. Format 1 (before 2026-12-07) kept only (1 + WINDOWS, d): still
  read, for clusters and for re-scans of the listings the gate stopped; format 2 kept no evidence rows (its
  listings past the gate are carried or read again, never re-scored).
* ``RESULTS.descriptors.json``: what maps them: the model fingerprint, the index version (name, history, file
  hashes, reference ids), the cascade's settings and the array's shape. ``rescan.py`` reads it to refuse
  descriptors of another model, to know which references are new since and whether the scan ran as it would.

While the scan runs, descriptors go to ``.RESULTS.descriptors.part`` (fixed-size records ``position, vector``),
flushed before the rows of their batch, so a killed scan resumed with ``--resume`` keeps them; the final pass
turns the records into the ``.npy`` (last record of a position wins) and deletes the part file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path

import numpy as np

from ..cascade import CascadeSettings
from ..cascade.descriptors import descriptor_shape
from ..errors import MatcherError
from ..index import IndexVersion

FORMAT = 3
READ_FORMATS = (1, 2, 3)  # format 1: global + windows only; format 2: no evidence rows (``cascade.descriptors``)
_MAGIC = b"MHIST002"
_CHUNK = 4096  # records converted at a time


def history_paths(results: str | os.PathLike) -> tuple[Path, Path]:
    """``(RESULTS.descriptors.npy, RESULTS.descriptors.json)`` of a results file."""
    results = Path(results)
    return results.with_name(results.name + ".descriptors.npy"), results.with_name(results.name + ".descriptors.json")


def version_record(version: IndexVersion) -> dict:
    """What a re-scan must know of the index version that made the descriptors (``descriptors.json``)."""
    manifest = version.manifest
    return {"name": version.folder.name, "history": manifest.get("history", []),
            "files": {name: meta.get("sha256") for name, meta in manifest.get("files", {}).items()},
            "reference_ids": _ranges(sorted(r.id for r in version.refs.references))}


def open_history(results: str | os.PathLike, matcher, *, resume: bool = False) -> "DescriptorLog | None":
    """The descriptor log of a scan by ``matcher`` (a ``cascade.Matcher``); None for a matcher without an index
    version (a stand-in in tests), whose results then have no stored descriptors and no clusters."""
    version = getattr(matcher, "version", None)
    if not isinstance(version, IndexVersion):
        return None
    return DescriptorLog(results, version, matcher.embedder.fingerprint(), resume=resume,
                         settings=getattr(matcher, "settings", CascadeSettings()))


class DescriptorLog:
    """Collects a scan's descriptors (``add`` per listing, ``flush`` per batch) and writes them out (``finish``).

    results : the results file the descriptors belong beside (its final name, e.g. the Parquet file)
    version : the index version scanning (its whitened space; recorded in the JSON)
    fingerprint : the embedder's fingerprint (``Embedder.fingerprint``), refused by re-scans of another model
    resume : keep the descriptors a killed scan had flushed
    settings : the cascade's settings (recorded: a re-scan keeps a row past the gate only if it runs the same)
    """

    def __init__(self, results: str | os.PathLike, version: IndexVersion, fingerprint: dict, *,
                 resume: bool = False, settings: CascadeSettings = CascadeSettings()):
        self.npy, self.meta = history_paths(results)
        self.part = self.npy.with_name("." + Path(results).name + ".descriptors.part")
        refs = version.refs
        self.shape = descriptor_shape(int(refs.vectors.shape[1]), int(refs.raw_descriptors.shape[1]))
        self.record = {"format": FORMAT, "fingerprint": fingerprint, "index_version": version_record(version),
                       "cascade": asdict(settings)}
        self._header = _MAGIC + np.asarray(self.shape, np.int32).tobytes()
        self._size = 8 + 2 * self.shape[0] * self.shape[1]
        self._file = self._open(resume)
        self.highest = -1

    def _open(self, resume: bool):
        try:
            self.part.parent.mkdir(parents=True, exist_ok=True)
            if resume and self.part.is_file():
                with open(self.part, "rb") as f:
                    same = f.read(len(self._header)) == self._header
                if same:
                    whole = (self.part.stat().st_size - len(self._header)) // self._size
                    with open(self.part, "r+b") as f:
                        f.truncate(len(self._header) + whole * self._size)  # a torn last record goes
                    return open(self.part, "ab")
            handle = open(self.part, "wb")
            handle.write(self._header)
            return handle
        except OSError as exc:
            raise MatcherError(f"{self.part}: cannot write the scan's descriptors: {exc.strerror}") from None

    def add(self, position: int, descriptor: np.ndarray | None) -> None:
        """Record one listing's descriptor (float16 ``shape``; a re-scan's carried descriptor of an older, shorter
        layout is padded with zero rows); None (a failed image) records nothing."""
        self.highest = max(self.highest, position)
        if descriptor is None:
            return
        record = np.zeros(self.shape, np.float16)
        record[:len(descriptor)] = np.asarray(descriptor, np.float16)[:self.shape[0]]
        self._file.write(np.int64(position).tobytes() + record.tobytes())

    def flush(self) -> None:
        """Push the records to disk; called before the results file's flush of the same batch."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def finish(self) -> Path:
        """Write ``RESULTS.descriptors.npy`` (a row per position up to the highest seen) and its JSON, delete the
        part file; returns the ``.npy`` path. Streams the records: memory stays one chunk."""
        self._file.close()
        size = os.path.getsize(self.part)
        count = (size - len(self._header)) // self._size
        record = np.dtype([("position", "<i8"), ("vector", "<f2", self.shape)])
        stored = np.memmap(self.part, record, "r", offset=len(self._header), shape=(count,)) if count else None
        highest = max(self.highest, int(stored["position"].max()) if count else -1)
        temp = self.npy.with_name("." + self.npy.name + ".tmp")
        out = np.lib.format.open_memmap(temp, "w+", np.float16, (highest + 1, *self.shape))
        for start in range(0, count, _CHUNK):
            chunk = stored[start:start + _CHUNK]
            out[chunk["position"]] = chunk["vector"]
        out.flush()
        del out, stored
        os.replace(temp, self.npy)
        meta = dict(self.record, shape=[highest + 1, *self.shape], dtype="float16", rows="position")
        self.meta.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        self.part.unlink()
        return self.npy

    def close(self) -> None:
        """Close the part file without finishing (a scan that stopped early keeps it for ``--resume``)."""
        self._file.close()


@dataclass(frozen=True)
class History:
    """A results file's stored descriptors: ``vectors`` float16 (n, rows, d) read-only memory map (row = position;
    zeros where none; rows as ``cascade.descriptors`` lays them out, only global + windows in format 1) and
    ``meta`` (``descriptors.json``)."""

    vectors: np.ndarray
    meta: dict

    def has(self, position: int) -> bool:
        """Whether the listing at ``position`` has a stored descriptor."""
        return 0 <= position < len(self.vectors) and bool(np.any(self.vectors[position, 0]))


def scanned_with(meta: dict, settings: CascadeSettings) -> bool:
    """Whether stored descriptors (their ``descriptors.json``, ``meta``) were made by a cascade with ``settings``,
    as ``DescriptorLog`` records them."""
    return meta.get("cascade") == asdict(settings)


def read_history(results: str | os.PathLike) -> History:
    """The descriptors kept beside ``results``; one-line ``MatcherError`` when missing or damaged."""
    npy, meta_path = history_paths(results)
    if not npy.is_file() or not meta_path.is_file():
        raise MatcherError(f"{results}: no stored descriptors beside it ({npy.name}, {meta_path.name}); results "
                           "from a scan older than this feature cannot be re-scanned, scan the listings again")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        vectors = np.load(npy, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise MatcherError(f"{meta_path}: unreadable stored descriptors ({exc})") from None
    if meta.get("format") not in READ_FORMATS or list(vectors.shape) != meta.get("shape"):
        raise MatcherError(f"{meta_path}: stored descriptors of format {meta.get('format')} and shape "
                           f"{meta.get('shape')} do not match {npy.name} {list(vectors.shape)}")
    return History(vectors, meta)


def reference_ids(record: dict) -> set[int]:
    """The reference ids of a ``version_record``."""
    return {i for start, end in record.get("reference_ids", []) for i in range(start, end)}


def _ranges(ids: list[int]) -> list[list[int]]:
    """Sorted ids -> [[start, end), ...] runs (ids are handed out in order, so an index has few runs)."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    return runs
