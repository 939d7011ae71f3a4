"""FAISS wrapper: inner-product search over whitened, L2-normalised vectors with stable int64 ids.

Ids are the reference ids of the references table, so they survive removals. Inner product of unit vectors is
cosine similarity, in [-1, 1].

Two structures, chosen by size with ``VectorIndex.for_vectors(dim, n)``:

- **flat** (``IndexIDMap2(IndexFlatIP)``): exact; every query scans every vector. Used up to ``FLAT_MAX``
  vectors.
- **ivf** (``IndexIVFFlat``, inner product, spherical k-means coarse quantizer): approximate; the vectors are
  split into ``nlist`` ~ 4 sqrt(n) cells and a query scans the ``nprobe`` cells nearest to it. Vectors are stored
  uncompressed, so whatever it returns has its exact cosine. IVF keeps the caller's int64 ids in its inverted
  lists and supports ``add_with_ids`` and ``remove_ids`` natively, so ids stay stable without an id map (an
  ``IndexIDMap`` over an IVF would corrupt its id map on removal; HNSW cannot remove at all, which is why it
  is not used). The cells are learnt (k-means) on the first batch of vectors added; later additions go into the
  existing cells, so an index that grew far beyond (or drifted from) what it was trained on should be rebuilt
  (``matcher index build``, and ``add``/``remove`` already rebuild the structure from all vectors).

Why the threshold and the default nprobe (measured with ``scripts/bench_index.py`` on real whitened
EfficientNet-Lite0 embeddings of augmented references; figures: docs/benchmarks.md):

- A flat query reads all n x d x 4 bytes. For the batch sizes the engine issues (1 to a few hundred queries:
  ``matcher scan`` matches 32 listings at a time, plus 10 region crops per doubtful listing) FAISS does not use
  BLAS, so a flat query's cost grows linearly with n. Up to ~100k vectors flat search costs less than embedding
  the listing photo, is exact, needs no training and builds instantly, so an approximate index buys nothing;
  beyond it the search, not the CNN, becomes the cost of a scan and grows linearly with the catalog. Hence
  ``FLAT_MAX = 100_000``.
- Above it IVF with nlist = 4 sqrt(n) and ``nprobe = 32`` keeps recall@10 against flat well above 0.98 up to 1M
  vectors (smaller nprobe loses recall) at a small fraction of a flat query's cost; the margin above 0.98 is
  deliberate, since a catalog more varied than the benchmark's is harder for IVF. Build (k-means on <= 64 vectors
  per cell, then assignment) is small next to embedding that many photos; memory is the same as flat (vectors
  stored uncompressed) plus ids.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss

METRIC = "inner_product"
FLAT_MAX = 100_000  # up to this many vectors an exact flat index is fast enough (see the module docstring)
DEFAULT_NPROBE = 32  # cells scanned per query by the IVF kind: recall@10 >= 0.98 on real embeddings
TRAIN_POINTS_PER_LIST = 64  # k-means sample per cell (FAISS warns below 39); bounds the training time
MIN_POINTS_PER_LIST = 39  # fewer training vectors than nlist * this shrink nlist


def ivf_nlist(n: int) -> int:
    """Number of IVF cells for n vectors: 4 sqrt(n), at least 1."""
    return max(1, int(round(4 * math.sqrt(max(n, 1)))))


def _faiss():
    """The faiss module, imported on first use rather than with this package. Loaded before torch, FAISS's
    bundled native libraries change the last digits of the engine's floating-point results, so the engine loads
    the model first (an index is opened or built after its embedder is made)."""
    import faiss

    return faiss


class VectorIndex:
    """Inner-product index with stable ids: exact (``flat``) or approximate (``ivf``).

    ``VectorIndex(dim)`` is flat; ``VectorIndex.for_vectors(dim, n)`` chooses by the expected size.

    Parameters
    ----------
    dim : int
        Vector length d.
    """

    def __init__(self, dim: int, _faiss_index: "faiss.Index" | None = None, *, _nlist: int | None = None,
                 _nprobe: int = DEFAULT_NPROBE):
        faiss = _faiss()
        self.dim = dim
        self._index = _faiss_index
        self._nlist = _nlist  # an IVF not created yet: it is made and trained by the first add
        self._nprobe = _nprobe
        if self._index is None and self._nlist is None:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @classmethod
    def for_vectors(cls, dim: int, n: int, *, flat_max: int | None = None, nprobe: int = DEFAULT_NPROBE,
                    nlist: int | None = None) -> "VectorIndex":
        """An empty index for about ``n`` vectors of length ``dim``: flat up to ``flat_max`` (default
        ``FLAT_MAX``), else IVF.

        The IVF cells (``nlist``, default 4 sqrt(n)) are trained on the vectors of the first ``add``; if that
        batch is too small for them, fewer cells are used. ``nprobe`` is the number of cells a query scans.
        """
        if n <= (FLAT_MAX if flat_max is None else flat_max):
            return cls(dim)
        return cls(dim, _nlist=nlist or ivf_nlist(n), _nprobe=nprobe)

    # ------------------------------------------------------------------ properties
    @property
    def _ivf(self) -> "faiss.IndexIVF" | None:
        faiss = _faiss()
        return self._index if isinstance(self._index, faiss.IndexIVF) else None

    @property
    def approximate(self) -> bool:
        return self._nlist is not None or self._ivf is not None

    @property
    def size(self) -> int:
        """Number of vectors held."""
        return int(self._index.ntotal) if self._index is not None else 0

    @property
    def nprobe(self) -> int | None:
        """Cells scanned per query (IVF), None for flat."""
        if self._ivf is not None:
            return int(self._ivf.nprobe)
        return self._nprobe if self._nlist is not None else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if not self.approximate:
            raise ValueError("a flat index has no nprobe")
        self._nprobe = int(value)
        if self._ivf is not None:
            self._ivf.nprobe = int(value)

    @property
    def kind(self) -> str:
        """A short name of the FAISS structure, for `index info`: ``flat`` or ``ivf{nlist},nprobe={nprobe}``."""
        if not self.approximate:
            return "flat"
        nlist = self._ivf.nlist if self._ivf is not None else self._nlist
        return f"ivf{nlist},nprobe={self.nprobe}"

    # ------------------------------------------------------------------ changes
    def _train(self, vectors: np.ndarray) -> None:
        """Create the IVF and learn its cells on ``vectors`` (the first batch added)."""
        faiss = _faiss()
        nlist = max(1, min(self._nlist, len(vectors) // MIN_POINTS_PER_LIST))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.spherical = True  # unit vectors: centroids on the sphere
        ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
        ivf.cp.seed = 1234
        ivf.train(vectors)
        ivf.nprobe = self._nprobe
        self._index = ivf
        self._nlist = None

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add float32 (n, d) unit vectors under int64 (n,) ids (an untrained IVF learns its cells on them)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(vectors) != len(ids):
            raise ValueError(f"expected ({len(ids)}, {self.dim}) vectors, got {vectors.shape}")
        if not len(ids):
            return
        if self._index is None:
            self._train(vectors)
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove vectors by id; returns how many were removed."""
        if self._index is None:
            return 0
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    # ------------------------------------------------------------------ queries
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k neighbours of each query.

        Returns
        -------
        similarities : float32 (n, k), best first
        ids : int64 (n, k); -1 where fewer than k vectors exist or, for IVF, were found in the cells scanned
            (similarity is then -inf)
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.size == 0:
            return (np.full((len(queries), 1), -np.inf, np.float32), np.full((len(queries), 1), -1, np.int64))
        k = max(1, min(k, self.size))
        sims, ids = self._index.search(queries, k)
        sims[ids < 0] = -np.inf
        return sims, ids

    def reconstruct_all(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids int64 (n,), vectors float32 (n, d)) held: in insertion order (flat) or by cell (ivf)."""
        faiss = _faiss()
        if self.size == 0:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        ivf = self._ivf
        if ivf is None:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            return ids, self._index.index.reconstruct_n(0, len(ids)).reshape(len(ids), self.dim)
        lists = ivf.invlists
        all_ids, all_vectors = [], []
        for cell in range(ivf.nlist):
            size = lists.list_size(cell)
            if not size:
                continue
            all_ids.append(np.frombuffer(faiss.rev_swig_ptr(lists.get_ids(cell), size), np.int64).copy())
            codes = faiss.rev_swig_ptr(lists.get_codes(cell), size * ivf.code_size)
            all_vectors.append(np.frombuffer(codes, np.float32).reshape(size, self.dim).copy())
        return np.concatenate(all_ids), np.vstack(all_vectors)

    # ------------------------------------------------------------------ files
    def save(self, path: Path) -> None:
        """Write the FAISS index (an IVF's file carries its nlist and nprobe)."""
        faiss = _faiss()
        if self._index is None:  # an IVF that never got vectors: save an empty flat one
            faiss.write_index(faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim)), str(path))
            return
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        faiss = _faiss()
        raw = faiss.read_index(str(path))
        if isinstance(raw, faiss.IndexIVF):
            return cls(raw.d, raw, _nprobe=int(raw.nprobe))
        return cls(raw.d, raw)
