"""Keypoints a reference shares with other brands: logos, mascots and layouts of a product family.

Sister products (two yoghurts of one dairy, two juices of one maker) carry the same logo, so a photo of a
variant that is *not* in the catalog still gets many SIFT inliers on its sister's references: all of them on the
logo. What proves "this is that very product" is the inliers on the rest of the package.

At index build each reference is verified against its nearest references of other brands (by whitened cosine);
the reference keypoints that are inliers of such a match (with at least ``MIN_SHARED_INLIERS``, so chance
matches do not count) are *shared* with that brand. A listing's **distinctive inliers** with a reference are its
inliers on keypoints that no other (visible) brand shares. No labels are needed, and it adapts to each catalog:
a brand with no family in the catalog has no shared keypoints, and adding a sister brand marks them.

Layout: ``SharedKeypoints = list[dict[str, np.ndarray]]``, one dict per reference row, brand name -> sorted
int64 indices of that reference's keypoints (rows of its ``LocalFeatures.points``) shared with the brand.
"""
from __future__ import annotations

from typing import Collection, Sequence

import numpy as np

from ..features.sift import LocalFeatures, mirror_features, verify_pair

SharedKeypoints = list[dict[str, np.ndarray]]

MIN_SHARED_INLIERS = 10  # a match with fewer inliers marks nothing (chance matches stay well below it)


def find_shared_keypoints(vectors: np.ndarray, brands: Sequence[str], local_features: Sequence[LocalFeatures],
                          *, neighbours: int,
                          min_inliers: int = MIN_SHARED_INLIERS) -> SharedKeypoints:
    """For each reference (row of ``vectors``, float32 (n, d) whitened), which of its keypoints other brands share.

    Costs ``n * neighbours`` SIFT verifications (figures: docs/benchmarks.md).
    """
    n = len(brands)
    shared: SharedKeypoints = [{} for _ in range(n)]
    if n < 2:
        return shared
    similarity = vectors @ vectors.T
    names = np.asarray(brands)
    for row in range(n):
        order = np.argsort(-similarity[row], kind="stable")
        others = order[names[order] != names[row]][:neighbours]
        for other in others:
            query = local_features[other]
            found = verify_pair(query, local_features[row], query_mirrored=mirror_features(query))
            if found.inliers < min_inliers:
                continue
            brand = str(names[other])
            known = shared[row].get(brand, np.zeros(0, np.int64))
            shared[row][brand] = np.union1d(known, found.reference_index).astype(np.int64)
    return shared


def distinctive_inliers(shared_by_brand: dict[str, np.ndarray], reference_index: np.ndarray,
                        hidden_brands: Collection[str] = ()) -> int:
    """How many of a match's inliers (``reference_index``: the reference keypoints they hit) lie on keypoints
    no other brand shares; brands in ``hidden_brands`` are not in the catalog for this listing (calibration)."""
    masks = [keys for brand, keys in shared_by_brand.items() if brand not in hidden_brands]
    if not masks or len(reference_index) == 0:
        return int(len(reference_index))
    return int(np.count_nonzero(~np.isin(reference_index, np.concatenate(masks))))


def pack_shared(shared: SharedKeypoints) -> dict[str, np.ndarray]:
    """Flat arrays for ``np.savez``: ``row`` (m,), ``keypoint`` (m,) int64 and ``brand`` (m,) str, one entry per
    (reference row, brand, shared keypoint)."""
    rows, keys, names = [], [], []
    for row, by_brand in enumerate(shared):
        for brand, keypoints in sorted(by_brand.items()):
            rows.append(np.full(len(keypoints), row, np.int64))
            keys.append(keypoints)
            names.extend([brand] * len(keypoints))
    return {"row": np.concatenate(rows) if rows else np.zeros(0, np.int64),
            "keypoint": np.concatenate(keys) if keys else np.zeros(0, np.int64),
            "brand": np.asarray(names, dtype=str)}


def unpack_shared(arrays, references: int) -> SharedKeypoints:
    """Inverse of :func:`pack_shared` for ``references`` rows (works on an ``np.load`` result)."""
    shared: SharedKeypoints = [{} for _ in range(references)]
    rows, keys, names = np.asarray(arrays["row"]), np.asarray(arrays["keypoint"]), np.asarray(arrays["brand"])
    for row, brand in sorted(set(zip(rows.tolist(), names.tolist()))):
        if not 0 <= row < references:
            raise ValueError(f"shared keypoints name reference row {row} of {references}")
        shared[row][brand] = np.sort(keys[(rows == row) & (names == brand)]).astype(np.int64)
    return shared
