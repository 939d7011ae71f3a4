"""Search stage: nearest references of whitened listing vectors, brand prototypes, feature-map windows."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..index import ReferenceIndex
from .evidence import Candidate, ListingEvidence


def global_evidence(refs: ReferenceIndex, query_vectors: np.ndarray, *, k: int,
                    exclude: Sequence[set[int]] | None = None) -> list[ListingEvidence]:
    """Nearest references of whitened query vectors (n, d) and (when the index keeps brand prototypes) their
    similarity to the prototypes of the candidates' brands; ``exclude[i]`` hides ref ids from query i."""
    if len(refs.background):
        background = (query_vectors @ refs.background.T).max(axis=1)
    else:
        background = np.full(len(query_vectors), -1.0, np.float32)
    out = []
    for hits, bg in zip(visible_neighbours(refs, query_vectors, k, exclude), background):
        cands = [Candidate(r, refs.reference(r).brand, s, s) for s, r in hits[:k]]
        out.append(ListingEvidence(candidates=cands, background_similarity=float(bg)))
    if refs.prototypes is not None:
        hidden_rows = [[refs.row_of_id[r] for r in e] for e in exclude] if exclude else None
        for ev, row in zip(out, refs.prototypes.similarities(query_vectors, hidden_rows)):
            ev.prototype_similarity = refs.prototypes.nearest(row, {c.brand for c in ev.candidates})
    return out


def visible_neighbours(refs: ReferenceIndex, vectors: np.ndarray, k: int, exclude: Sequence[set[int]] | None,
                        rows_per_listing: int = 1) -> list[list[tuple[float, int]]]:
    """Search whitened ``vectors`` ((n * rows_per_listing, d), each listing's rows consecutive) for k neighbours
    each, plus as many as the largest ``exclude`` set so that hiding leaves k; per listing, its rows' (cosine,
    ref id) hits in row order, without empty slots and ids in ``exclude[i]``."""
    extra = max((len(e) for e in exclude), default=0) if exclude else 0
    sims, ids = refs.index.search(vectors, k + extra)
    n = len(vectors) // rows_per_listing
    out = []
    for i, (row_sims, row_ids) in enumerate(zip(sims.reshape(n, -1), ids.reshape(n, -1))):
        hidden = exclude[i] if exclude else set()
        out.append([(s, r) for s, r in zip(row_sims.tolist(), row_ids.tolist()) if r >= 0 and r not in hidden])
    return out


def add_window_similarity(refs: ReferenceIndex, evidence: Sequence[ListingEvidence], windows: np.ndarray, *,
                          exclude: Sequence[set[int]] | None = None) -> None:
    """Set each listing's ``window_scores``: per feature-map window (raw, (n, WINDOWS, D)), its best cosine to
    any reference not hidden from the listing (their maximum is ``window_similarity``)."""
    set_window_scores(refs, evidence, whiten_windows(refs, windows), exclude=exclude)


def whiten_windows(refs: ReferenceIndex, windows: np.ndarray) -> np.ndarray:
    """Raw feature-map window descriptors (n, WINDOWS, D) -> whitened, L2-normalised float32 (n, WINDOWS, d)."""
    n, per_image = windows.shape[:2]
    if n == 0 or per_image == 0:
        return np.zeros((n, per_image, refs.vectors.shape[1]), np.float32)
    return refs.whitening.apply(windows.reshape(n * per_image, -1)).reshape(n, per_image, -1)


def set_window_scores(refs: ReferenceIndex, evidence: Sequence[ListingEvidence], whitened: np.ndarray, *,
                      exclude: Sequence[set[int]] | None = None) -> None:
    """``add_window_similarity`` for windows already whitened ((n, WINDOWS, d), e.g. stored by a scan)."""
    n, per_image = whitened.shape[:2]
    if n == 0 or per_image == 0:
        return
    vectors = np.ascontiguousarray(whitened.reshape(n * per_image, -1), dtype=np.float32)
    per_window = [e for e in exclude for _ in range(per_image)] if exclude else None
    best = [max((s for s, _ in hits), default=-1.0) for hits in visible_neighbours(refs, vectors, 1, per_window)]
    for i, ev in enumerate(evidence):
        ev.window_scores = tuple(best[i * per_image:(i + 1) * per_image])
