"""The descriptors the cascade keeps per listing (``ListingEvidence.descriptor``), for clusters and re-scans.

One float16 array of shape ``descriptor_shape(d, D)`` = (rows, d) per listing, rows in this order:

* row 0: the whitened global descriptor (d,);
* rows 1 .. WINDOWS: the whitened feature-map windows (``features.pooling.WINDOWS``), which the gate reads;
* the next CROPS rows: the whitened vectors of the region crops the region search embedded (``regions.py``), in
  the order embedded, zeros after them (and all zeros when regions were not searched, or when more crops than
  CROPS were embedded: a ``region_grid`` above 2); a re-scan checks new references against them;
* the next ceil(D / d) rows: the raw CNN descriptor (D,), zero-padded to whole rows, which the gate's likeness
  (``index.likeness``) reads and whitening cannot give back;
* the last ceil(SLOTS / d) rows: what the expensive stages measured (``stored_evidence.py``: inliers and colours
  per verified reference, the listing's hues), zeros when they did not run; a re-scan re-scores from it.

One array, not several, so every engine (the local scan, the Ray actors' bytes) carries it as it is; float16 because
a cosine then moves by at most ~1e-3, which the re-scan's margins cover. d = 256, D = 1280: 18 rows, 9 KB a
listing. Older layouts (format 2: no evidence rows) read as if their evidence rows were zeros.
"""
from __future__ import annotations

import numpy as np

from ..features.pooling import WINDOWS
from .stored_evidence import SLOTS, StoredEvidence, unpack_evidence

CROPS = WINDOWS  # crop rows: region_grid 2 cuts 4 quadrants + a centre crop, at most 5 embedded
WINDOW_ROWS = slice(1, 1 + WINDOWS)
CROP_ROWS = slice(1 + WINDOWS, 1 + WINDOWS + CROPS)
RAW_START = 1 + WINDOWS + CROPS


def descriptor_shape(dim: int, raw_dim: int) -> tuple[int, int]:
    """(rows, d) of one listing's stored descriptor, for whitened vectors of length ``dim`` and raw of ``raw_dim``."""
    return RAW_START + _rows(raw_dim, dim) + _rows(SLOTS, dim), dim


def pack_descriptor(vector: np.ndarray, windows: np.ndarray, crops: np.ndarray | None, raw: np.ndarray,
                    evidence: StoredEvidence | None = None) -> np.ndarray:
    """float16 ``descriptor_shape(d, D)``: vector (d,), windows (WINDOWS, d), crops (k, d) or None, raw (D,), and
    the expensive stages' evidence (None: they did not run)."""
    dim = len(vector)
    out = np.zeros(descriptor_shape(dim, len(raw)), np.float16)
    out[0] = vector
    out[WINDOW_ROWS] = windows
    if crops is not None and 0 < len(crops) <= CROPS:
        out[CROP_ROWS.start:CROP_ROWS.start + len(crops)] = crops
    _put(out, _raw_rows(len(raw), dim), raw)
    if evidence is not None:
        _put(out, _evidence_rows(len(raw), dim), evidence.pack())
    return out


def with_evidence(descriptor: np.ndarray, raw_dim: int, evidence: StoredEvidence | None) -> np.ndarray:
    """A copy of one listing's stored descriptor (any layout, padded to ``descriptor_shape``) holding
    ``evidence`` (None: none) in its evidence rows."""
    rows, dim = descriptor_shape(descriptor.shape[1], raw_dim)
    out = np.zeros((rows, dim), np.float16)
    out[:min(rows, len(descriptor))] = descriptor[:rows]
    _put(out, _evidence_rows(raw_dim, dim), evidence.pack() if evidence is not None else np.zeros(SLOTS))
    return out


def stored_raw(descriptors: np.ndarray, raw_dim: int) -> np.ndarray:
    """float32 (n, D): the raw CNN descriptors of stored descriptors (n, rows, d)."""
    rows = _raw_rows(raw_dim, descriptors.shape[2])
    return np.asarray(descriptors[:, rows], np.float32).reshape(len(descriptors), -1)[:, :raw_dim]


def stored_evidence(descriptor: np.ndarray, raw_dim: int) -> StoredEvidence | None:
    """The expensive stages' evidence one listing's stored descriptor (rows, d) holds; None when none was kept
    (they did not run, or a layout without evidence rows)."""
    rows = _evidence_rows(raw_dim, descriptor.shape[1])
    if len(descriptor) < rows.stop:
        return None
    return unpack_evidence(np.asarray(descriptor[rows], np.float32).ravel()[:SLOTS])


def _rows(length: int, dim: int) -> int:
    return -(-length // dim)


def _raw_rows(raw_dim: int, dim: int) -> slice:
    return slice(RAW_START, RAW_START + _rows(raw_dim, dim))


def _evidence_rows(raw_dim: int, dim: int) -> slice:
    start = RAW_START + _rows(raw_dim, dim)
    return slice(start, start + _rows(SLOTS, dim))


def _put(out: np.ndarray, rows: slice, values: np.ndarray) -> None:
    """Write a flat vector into whole rows of ``out``, zero-padded."""
    flat = np.zeros((rows.stop - rows.start) * out.shape[1], np.float32)
    flat[:len(values)] = values
    out[rows] = flat.reshape(-1, out.shape[1]).astype(np.float16)


def stored_crops(descriptor: np.ndarray) -> np.ndarray:
    """float32 (k, d): the crop vectors one listing's stored descriptor holds (its non-zero crop rows)."""
    crops = np.asarray(descriptor[CROP_ROWS], np.float32)
    return crops[np.any(crops != 0, axis=1)]
