"""The descriptors the cascade keeps per listing (``ListingEvidence.descriptor``), for clusters and re-scans.

One float16 array of shape ``descriptor_shape(d, D)`` = (rows, d) per listing, rows in this order:

* row 0: the whitened global descriptor (d,);
* rows 1 .. WINDOWS: the whitened feature-map windows (``features.pooling.WINDOWS``), which the gate reads;
* the next CROPS rows: the whitened vectors of the region crops the region search embedded (``regions.py``), in
  the order embedded, zeros after them (and all zeros when regions were not searched, or when more crops than
  CROPS were embedded: a ``region_grid`` above 2); a re-scan checks new references against them;
* the last ceil(D / d) rows: the raw CNN descriptor (D,), zero-padded to whole rows, which the gate's likeness
  (``index.likeness``) reads and whitening cannot give back.

One array, not several, so every engine (the local scan, the Ray actors' bytes) carries it as it is; float16 because
a cosine then moves by at most ~1e-3, which the re-scan's margins cover. d = 256, D = 1280: 16 rows, 8 KB a listing.
"""
from __future__ import annotations

import numpy as np

from ..features.pooling import WINDOWS

CROPS = WINDOWS  # crop rows: region_grid 2 cuts 4 quadrants + a centre crop, at most 5 embedded
WINDOW_ROWS = slice(1, 1 + WINDOWS)
CROP_ROWS = slice(1 + WINDOWS, 1 + WINDOWS + CROPS)
RAW_START = 1 + WINDOWS + CROPS


def descriptor_shape(dim: int, raw_dim: int) -> tuple[int, int]:
    """(rows, d) of one listing's stored descriptor, for whitened vectors of length ``dim`` and raw of ``raw_dim``."""
    return RAW_START + -(-raw_dim // dim), dim


def pack_descriptor(vector: np.ndarray, windows: np.ndarray, crops: np.ndarray | None,
                    raw: np.ndarray) -> np.ndarray:
    """float16 ``descriptor_shape(d, D)``: vector (d,), windows (WINDOWS, d), crops (k, d) or None, raw (D,)."""
    dim = len(vector)
    out = np.zeros(descriptor_shape(dim, len(raw)), np.float16)
    out[0] = vector
    out[WINDOW_ROWS] = windows
    if crops is not None and 0 < len(crops) <= CROPS:
        out[CROP_ROWS.start:CROP_ROWS.start + len(crops)] = crops
    flat = np.zeros((len(out) - RAW_START) * dim, np.float32)
    flat[:len(raw)] = raw
    out[RAW_START:] = flat.reshape(-1, dim)
    return out


def stored_raw(descriptors: np.ndarray, raw_dim: int) -> np.ndarray:
    """float32 (n, D): the raw CNN descriptors of stored descriptors (n, rows, d)."""
    return np.asarray(descriptors[:, RAW_START:], np.float32).reshape(len(descriptors), -1)[:, :raw_dim]


def stored_crops(descriptor: np.ndarray) -> np.ndarray:
    """float32 (k, d): the crop vectors one listing's stored descriptor holds (its non-zero crop rows)."""
    crops = np.asarray(descriptor[CROP_ROWS], np.float32)
    return crops[np.any(crops != 0, axis=1)]
