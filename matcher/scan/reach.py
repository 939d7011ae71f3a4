"""What references added by ``index add`` can change for a listing scanned before: the keep rules of ``rescan.py``.

A fresh scan of a listing with the new version collects the old scan's evidence, to the last bit, when none of
the added references reaches it, and the stages it reached read nothing else that changed. From the listing's
stored descriptors (``cascade.descriptors``, float16, so every cosine is compared with a ``margin`` of ~10x its
rounding error) that is, stage by stage:

* global search: every added reference below the 20th candidate (an exact flat index only: an IVF's cells are
  relearnt by ``index add``), and none of the candidates' brands gaining references (their prototypes move);
* feature-map windows: every added reference below each window's best cosine (the gate reads the best; which
  crops the region search embeds follows all five);
* past the gate, region search: every added reference below the last of each stored crop's nearest references;
* past the gate, likeness (raw descriptor against the synthetic listings, ``index.likeness``): the synthetic
  listings made from added references cannot flip the ``alike`` decision;
* past the gate, verification: the distinctive inliers count keypoints other brands share, and ``index add``
  recomputes them for every reference; the shared keypoints of the candidates verification may have reached (the
  ``verify_top`` best by global, then by region similarity, widened by the margin) must equal the scanned
  version's (``shared_keypoints_changed``).

The gate's own decision then needs no margin: the features it reads are the old ones.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..cascade.descriptors import WINDOW_ROWS, stored_crops, stored_evidence, stored_raw
from ..cascade.evidence import ListingEvidence
from ..cascade.feedback import hidden_references
from ..cascade.regions import PER_REGION
from ..index import IndexVersion, store
from ..index.shared_keypoints import SharedKeypoints, unpack_shared


class Reach:
    """The references ``version`` holds that the scanned version (``scanned``: a ``history.version_record``) did
    not, and the keep rules against them.

    added_ids : the new reference ids; margin : cosine margin of float16 comparisons
    """

    def __init__(self, version: IndexVersion, index_dir: Path, scanned: dict, added_ids: list[int], *,
                 margin: float, candidates: int, verify_top: int):
        refs = version.refs
        self.refs, self.margin, self.candidates, self.verify_top = refs, margin, candidates, verify_top
        self.added_ids = set(added_ids)
        self.added = refs.vectors[[refs.row_of_id[i] for i in added_ids]] if added_ids else refs.vectors[:0]
        self.added_brands = {refs.reference(i).brand for i in added_ids}
        self.exact = not refs.index.approximate
        hidden = hidden_references(refs, None, 1)
        self.hidden = hidden[0] if hidden else set()
        likeness = refs.likeness
        new = np.isin(likeness.sources, list(self.added_ids)) if len(likeness) else np.zeros(0, bool)
        self.likeness_old, self.likeness_new = likeness.vectors[~new], likeness.vectors[new]
        self.threshold = version.scorer.likeness_threshold
        self.shared_changed = _shared_changed_since(version, index_dir, scanned)

    def global_untouched(self, ev: ListingEvidence, descriptor: np.ndarray, every_window: bool) -> bool:
        """No added reference enters the global candidates, moves a candidate brand's prototype, or raises the
        best window cosine (``every_window``: any window's). ``ev``: the global stage redone with the new version
        from ``descriptor`` (one listing's stored float16 rows)."""
        if not self.exact or len(ev.candidates) < self.candidates:
            return False
        if not len(self.added):
            return True
        if any(c.ref_id in self.added_ids or c.brand in self.added_brands for c in ev.candidates):
            return False
        vectors = np.asarray(descriptor[:WINDOW_ROWS.stop], np.float32)
        best = vectors @ self.added.T  # (1 + WINDOWS, added)
        if best[0].max() >= ev.candidates[-1].similarity - self.margin:
            return False
        windows = best[WINDOW_ROWS].max(axis=1)
        if every_window:
            return len(ev.window_scores) == len(windows) and bool(
                np.all(windows < np.asarray(ev.window_scores) - self.margin))
        return bool(windows.max() < ev.window_similarity - self.margin)

    def past_gate_untouched(self, ev: ListingEvidence, descriptor: np.ndarray) -> bool:
        """For a listing the gate may have passed (and ``global_untouched(every_window=True)``): the region search,
        the likeness decision and the candidates' shared keypoints are as they were."""
        kept = stored_evidence(descriptor, self.refs.raw_descriptors.shape[1])
        if self.shared_changed is None or (kept is not None and kept.panels_searched):
            return False  # the panels of a multi-photo listing are not among the stored crops
        similarity = {c.ref_id: c.similarity for c in ev.candidates}
        verified = _best(similarity, self.verify_top, self.margin)  # verified before the region search
        crops = stored_crops(descriptor)
        if len(crops):
            k = PER_REGION + len(self.hidden)
            sims, ids = self.refs.index.search(np.ascontiguousarray(crops), k)
            if np.any(ids < 0) or np.isin(ids, list(self.added_ids)).any():
                return False
            if len(self.added) and np.any((crops @ self.added.T).max(axis=1) >= sims[:, -1] - self.margin):
                return False
            region = {int(r) for r in ids.ravel()} - self.hidden
            if any(self.refs.reference(r).brand in self.added_brands for r in region):
                return False
            global_vector = np.asarray(descriptor[0], np.float32)
            for r in region - similarity.keys():
                similarity[r] = float(global_vector @ self.refs.vectors[self.refs.row_of_id[r]])
            ids = list(similarity)
            by_crop = (crops @ self.refs.vectors[[self.refs.row_of_id[r] for r in ids]].T).max(axis=0)
            region_similarity = {r: max(similarity[r], float(s)) for r, s in zip(ids, by_crop)}
            verified |= _best(region_similarity, self.verify_top, self.margin)  # verified after it
        if verified & self.shared_changed:
            return False
        return self.likeness_unchanged(stored_raw(descriptor[None], self.refs.raw_descriptors.shape[1])[0])

    def likeness_unchanged(self, raw: np.ndarray) -> bool:
        """Whether the synthetic listings of the added references leave the ``alike`` decision (likeness >= the
        index's threshold) of a listing with raw CNN descriptor ``raw`` (D,) as it was."""
        if self.threshold is None or not len(self.likeness_new):
            return True
        old = float((self.likeness_old @ raw).max()) if len(self.likeness_old) else -1.0
        return alike_unchanged(old, float((self.likeness_new @ raw).max()), self.threshold, self.margin)


def alike_unchanged(old: float, added: float, threshold: float, margin: float) -> bool:
    """Whether likeness max(old, added) (cosines known to +-margin/2) is on the same side of ``threshold`` as
    ``old``: the added listings are not the nearest, or too far to reach it, or it was alike already."""
    return added < threshold - margin or old >= threshold + margin or added < old - margin


def _best(similarity: dict[int, float], top: int, margin: float) -> set[int]:
    """The ids whose similarity is within ``margin`` of the ``top``-th best or above (a superset of the ``top`` best
    whichever way float16 rounding broke near-ties)."""
    values = sorted(similarity.values(), reverse=True)
    if len(values) <= top:
        return set(similarity)
    floor = values[top - 1] - margin
    return {r for r, s in similarity.items() if s >= floor}


def shared_keypoints_changed(old: SharedKeypoints, old_ids: list[int], new: SharedKeypoints,
                             new_row_of_id: dict[int, int]) -> set[int]:
    """Reference ids (of ``old_ids``, the old version's rows in order) whose shared keypoints (brand -> keypoint
    indices) differ between the two versions; an id the new version lacks counts as changed."""
    changed = set()
    for row, ref_id in enumerate(old_ids):
        now = new[new_row_of_id[ref_id]] if ref_id in new_row_of_id else None
        before = old[row]
        if now is None or now.keys() != before.keys() or any(
                not np.array_equal(before[b], now[b]) for b in before):
            changed.add(ref_id)
    return changed


def _shared_changed_since(version: IndexVersion, index_dir: Path, scanned: dict) -> set[int] | None:
    """``shared_keypoints_changed`` against the scanned version, read from its folder (checked against the
    hashes it recorded); None when it is gone (garbage-collected) or does not match."""
    files = scanned.get("files", {})
    name = str(scanned.get("name", ""))
    if not store.VERSION_NAME.fullmatch(name):
        return None
    folder = store.versions_dir(index_dir) / name
    paths = {f: folder / f for f in ("references.csv", "shared_keypoints.npz")}
    try:
        if any(_sha256(p) != files.get(f) for f, p in paths.items()):
            return None
        references = store.read_references(paths["references.csv"])
        with np.load(paths["shared_keypoints.npz"]) as arrays:
            old = unpack_shared({k: arrays[k] for k in arrays.files}, len(references))
    except (OSError, ValueError, KeyError):
        return None
    return shared_keypoints_changed(old, [r.id for r in references], version.refs.shared_keypoints,
                                    version.refs.row_of_id)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
