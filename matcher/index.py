"""FAISS wrapper: inner-product search over whitened, L2-normalised vectors with stable int64 ids.

Ids are the reference ids of the references table, so they survive removals (FAISS ``IndexIDMap2``).
Inner product of unit vectors is cosine similarity, in [-1, 1].
"""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

METRIC = "inner_product"


class VectorIndex:
    """Exact (flat) inner-product index with stable ids.

    Parameters
    ----------
    dim : int
        Vector length d.
    """

    def __init__(self, dim: int, _faiss_index: faiss.Index | None = None):
        self.dim = dim
        self._index = _faiss_index if _faiss_index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @property
    def size(self) -> int:
        """Number of vectors held."""
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """A short name of the FAISS structure, for `index info`."""
        return "flat"

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add float32 (n, d) unit vectors under int64 (n,) ids."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(vectors) != len(ids):
            raise ValueError(f"expected ({len(ids)}, {self.dim}) vectors, got {vectors.shape}")
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove vectors by id; returns how many were removed."""
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k neighbours of each query.

        Returns
        -------
        similarities : float32 (n, k), best first
        ids : int64 (n, k); -1 where fewer than k vectors exist (similarity is then -inf)
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, self.size)) if self.size else 1
        sims, ids = self._index.search(queries, k)
        sims[ids < 0] = -np.inf
        return sims, ids

    def reconstruct_all(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids int64 (n,), vectors float32 (n, d)) held, in insertion order."""
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = np.vstack([self._index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, self.dim), np.float32)
        return ids, vectors

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        raw = faiss.read_index(str(path))
        return cls(raw.d, raw)
