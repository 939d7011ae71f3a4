"""Listing likeness: does a listing look like *any* listing of this catalog's products at all?

The cascade's gate (``cascade.gate``) compares a listing with the catalog's references, and against a catalog of a
few hundred references that is not enough to stop everyday photos: the weakest genuine listings (a product small
inside a screenshot or a collage, a dim photo of a shelf) have global evidence as weak as a photo of a dog.
What they do have is *kind*: a screenshot of a product looks like the index's synthetic screenshots of its other
products, a shelf photo like its other shelf photos, while a dog looks like none of them.

So the index keeps the raw CNN descriptors (before whitening, which emphasises what tells references apart, not
what kind of photo they are) of the synthetic listings the build made from its references (edited copies and
re-photographed views, ``building.calibration.make_listings``; ``index add`` makes them for new references). A listing's
*likeness* is its best cosine to any of them. At build, each synthetic listing's likeness is measured without the
listings made from the same reference (a real listing never has its own edits in the index), and the likeness
threshold keeps ``BuildSettings.likeness_recall`` of the listings worth the expensive stages; a listing below it skips them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

LIKENESS_FILE = "likeness.npz"


@dataclass(frozen=True)
class ListingLikeness:
    """Raw descriptors of synthetic listings, and the reference each was made from.

    vectors : float32 (m, D), L2-normalised raw CNN descriptors (``features.embedder.Embedder.describe``)
    sources : int64 (m,), the reference id each listing was made from
    """

    vectors: np.ndarray
    sources: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> "ListingLikeness":
        return cls(np.zeros((0, dim), np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.sources)

    def of(self, raw: np.ndarray) -> np.ndarray:
        """float32 (n,): each raw descriptor's best cosine to the synthetic listings (-1 when there are none)."""
        if len(self) == 0 or len(raw) == 0:
            return np.full(len(raw), -1.0, np.float32)
        return (np.asarray(raw, np.float32) @ self.vectors.T).max(axis=1)

    def leaving_out(self, raw: np.ndarray, hidden: Sequence[set[int]]) -> np.ndarray:
        """Like ``of``, but row i ignores the listings made from the reference ids in ``hidden[i]``."""
        similarity = np.asarray(raw, np.float32) @ self.vectors.T
        for row, ids in zip(similarity, hidden):
            row[np.isin(self.sources, list(ids))] = -1.0
        return similarity.max(axis=1, initial=-1.0)

    def keeping(self, ref_ids: set[int]) -> "ListingLikeness":
        """Only the listings made from references in ``ref_ids`` (after brands are removed)."""
        keep = np.isin(self.sources, list(ref_ids))
        return ListingLikeness(self.vectors[keep], self.sources[keep])

    def plus(self, other: "ListingLikeness") -> "ListingLikeness":
        return ListingLikeness(np.vstack([self.vectors, other.vectors]).astype(np.float32),
                               np.concatenate([self.sources, other.sources]).astype(np.int64))

    def save(self, path: Path) -> None:
        """float16 on disk (half the size; cosines move by < 1e-3)."""
        np.savez(path, vectors=self.vectors.astype(np.float16), sources=self.sources)

    @classmethod
    def load(cls, path: Path, dim: int) -> "ListingLikeness":
        """The file's listings, or none for an index saved before listing likeness."""
        if not path.is_file():
            return cls.empty(dim)
        arrays = np.load(path)
        return cls(arrays["vectors"].astype(np.float32), arrays["sources"].astype(np.int64))


def fit_threshold(likeness: np.ndarray, worth: np.ndarray, recall: float) -> float | None:
    """The likeness that ``recall`` of the worthwhile listings (bool ``worth``) reach; None without any."""
    values = np.asarray(likeness)[np.asarray(worth, bool)]
    return float(np.quantile(values, 1.0 - recall)) if len(values) else None
