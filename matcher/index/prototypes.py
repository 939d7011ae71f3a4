"""Brand prototypes: each brand's references averaged into one vector, for "another photo of this product".

A listing that shows a catalog product in a new photo (not an edited copy of any reference) is often closer to
the brand's references *on average* than to any single one of them: the single nearest reference of a look-alike
product can beat every photo of the right one, while the look-alike's other photos fall behind. So brands ranked
by their prototype find the right one for such listings more often than brands ranked by their best reference
(figures: docs/benchmarks.md).

The prototype of a brand is the normalised sum of its whitened reference vectors. It is derived from the index's
vectors when a version is loaded (nothing extra on disk), so adding or removing references updates it.
During calibration some references are hidden from a synthetic listing (``exclude``); the prototypes that
listing sees are made from the visible references only, and a brand with none visible has no prototype.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

_BLOCK_ROWS = 16384  # reference rows summed at once when building prototypes


@dataclass(frozen=True)
class BrandPrototypes:
    """Per-brand sums of whitened reference vectors.

    names : brand names, sorted
    sums : float64 (B, d), row b = sum of brand names[b]'s reference vectors
    counts : int (B,), references per brand
    brand_of_row : int (R,), which brand each reference row belongs to (index into names)
    vectors : float32 (R, d), the references' whitened vectors (to take hidden ones out of a sum)
    column : brand name -> its index in ``names``
    counted : bool (R,), the rows summed (genuine photos: an index's known fakes are not); None: all
    """

    names: list[str]
    sums: np.ndarray
    counts: np.ndarray
    brand_of_row: np.ndarray
    vectors: np.ndarray
    column: dict[str, int]
    counted: np.ndarray | None = None

    @classmethod
    def of(cls, vectors: np.ndarray, brands: Sequence[str], counted: np.ndarray | None = None) -> BrandPrototypes:
        """Prototypes of references ``vectors`` (R, d) whose brands are ``brands`` (R,); with ``counted`` (bool
        (R,)) only those rows are summed (a brand's known counterfeit photos are no photo of its product)."""
        if counted is not None:
            counted = np.asarray(counted, bool)
            vectors = np.where(counted[:, None], vectors, 0).astype(vectors.dtype) if len(vectors) else vectors
        names = sorted(set(brands))
        position = {b: i for i, b in enumerate(names)}
        brand_of_row = np.array([position[b] for b in brands], np.int64)
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        sums = np.zeros((len(names), dim), np.float64)
        # rows grouped by brand and summed a block at a time: a large catalog needs no float64 copy of it
        order = np.argsort(brand_of_row, kind="stable")
        for start in range(0, len(order), _BLOCK_ROWS):
            rows = order[start:start + _BLOCK_ROWS]
            block_brands = brand_of_row[rows]
            firsts = np.flatnonzero(np.r_[True, block_brands[1:] != block_brands[:-1]])
            sums[block_brands[firsts]] += np.add.reduceat(vectors[rows].astype(np.float64), firsts, axis=0)
        counts = np.bincount(brand_of_row[counted] if counted is not None else brand_of_row, minlength=len(names))
        return cls(names, sums, counts, brand_of_row, vectors, position, counted)

    def similarities(self, queries: np.ndarray,
                     hidden_rows: Sequence[Collection[int]] | None = None) -> np.ndarray:
        """float64 (n, B): cosine of each whitened query (n, d) to each brand's prototype (columns: ``names``).

        hidden_rows : per query, reference rows to leave out of the prototypes; a brand whose references are
            all hidden from a query gets -inf there
        """
        queries = np.asarray(queries, np.float64).reshape(len(queries), -1)
        if not self.names or len(queries) == 0:
            return np.zeros((len(queries), len(self.names)))
        norms = np.maximum(np.linalg.norm(self.sums, axis=1), 1e-12)
        cosines = queries @ self.sums.T / norms
        for i, hidden in enumerate(hidden_rows or ()):
            rows_of_brand: dict[int, list[int]] = {}
            for r in hidden:
                if self.counted is not None and not self.counted[r]:
                    continue  # not in the sums
                rows_of_brand.setdefault(int(self.brand_of_row[r]), []).append(r)
            for brand, rows in rows_of_brand.items():
                if len(rows) >= self.counts[brand]:
                    cosines[i, brand] = -np.inf
                    continue
                visible = self.sums[brand] - self.vectors[rows].astype(np.float64).sum(axis=0)
                cosines[i, brand] = queries[i] @ visible / max(np.linalg.norm(visible), 1e-12)
        return cosines

    def nearest(self, cosines: np.ndarray, brands: Collection[str], *, runners_up: int = 2) -> dict[str, float]:
        """One query's row of :meth:`similarities` as {brand: cosine} for ``brands`` (its candidates) plus the
        ``runners_up`` best brands overall, so that a brand's margin over the best other one can be read."""
        order = np.argsort(-cosines, kind="stable")[:runners_up]
        wanted = {self.names[int(b)] for b in order if np.isfinite(cosines[b])}
        wanted.update(b for b in brands if b in self.column)
        return {b: float(cosines[self.column[b]]) for b in wanted if np.isfinite(cosines[self.column[b]])}
