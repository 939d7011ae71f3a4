"""Tests of matcher.matching: the int8-ranked ratio test finds the matches an exact fp32 similarity matrix finds."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps
import numpy as np
import pytest

from matcher.features.matching import prepare, ratio_matches
from matcher.features.sift import extract_local_features, mirror_features

CATALOG = Path(__file__).resolve().parents[2] / "demo" / "catalog"


def exact_ratio_matches(query: np.ndarray, reference: np.ndarray, ratio: float) -> set[tuple[int, int]]:
    """The ratio test on the full fp32 cosine matrix of (n, 128) and (m, 128) uint8 descriptors, each reference
    keypoint kept for its closest query keypoint: the textbook definition the fast path must reproduce."""
    q = query.astype(np.float64)
    r = reference.astype(np.float64)
    cosines = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (r / np.linalg.norm(r, axis=1, keepdims=True)).T
    order = np.argsort(-cosines, axis=1)
    rows = np.arange(len(q))
    best, second = cosines[rows, order[:, 0]], cosines[rows, order[:, 1]]
    good = np.sqrt(np.maximum(2 - 2 * best, 0)) < ratio * np.sqrt(np.maximum(2 - 2 * second, 0))
    closest: dict[int, tuple[float, int]] = {}
    for i in np.flatnonzero(good):
        j = int(order[i, 0])
        if j not in closest or best[i] > closest[j][0]:
            closest[j] = (best[i], int(i))
    return {(i, j) for j, (_, i) in closest.items()}


@pytest.fixture(scope="module")
def descriptors() -> list[np.ndarray]:
    """RootSIFT descriptors of six catalog photos and of an edited copy of the first (the query side at 320 px)."""
    paths = sorted(CATALOG.glob("*/*.jpg"))[:6]
    if len(paths) < 6:
        pytest.skip("demo/catalog needs 6 photos")
    images = [Image.open(p).convert("RGB") for p in paths]
    copy = ImageOps.autocontrast(images[0].crop((20, 10, images[0].width - 30, images[0].height - 5)))
    refs = [extract_local_features(im).descriptors for im in images]
    return refs + [extract_local_features(copy, long_side=320).descriptors]


def as_pairs(found: tuple[np.ndarray, np.ndarray]) -> set[tuple[int, int]]:
    return set(zip(found[0].tolist(), found[1].tolist()))


def test_matches_are_those_of_the_exact_matrix(descriptors):
    *references, copy = descriptors
    queries = [copy, references[1], mirror_features_of(copy)]
    total, differing = 0, 0
    for query in queries:
        for reference in references:
            exact = exact_ratio_matches(query, reference, 0.8)
            fast = as_pairs(ratio_matches(prepare(query), prepare(reference), 0.8))
            total += len(exact)
            differing += len(exact ^ fast)
    assert total > 500  # the copy matches its original in hundreds of keypoints
    assert differing <= max(2, total // 1000)  # float ties at most


def test_copy_matches_its_original_most(descriptors):
    *references, copy = descriptors  # the references include other photos of the same product
    counts = [len(ratio_matches(prepare(copy), prepare(r), 0.8)[0]) for r in references]
    assert counts[0] > 1.5 * max(counts[1:])


def test_indices_are_sorted_and_each_reference_point_used_once(descriptors):
    *references, copy = descriptors
    query_idx, ref_idx = ratio_matches(prepare(copy), prepare(references[0]), 0.8)
    assert np.all(np.diff(query_idx) > 0)
    assert len(set(ref_idx.tolist())) == len(ref_idx)


def test_too_few_keypoints_give_no_matches(descriptors):
    query = descriptors[-1]
    for reference in (np.zeros((0, 128), np.uint8), query[:1]):
        found = ratio_matches(prepare(query), prepare(reference), 0.8)
        assert len(found[0]) == len(found[1]) == 0
    assert len(ratio_matches(prepare(query[:0]), prepare(query), 0.8)[0]) == 0


def mirror_features_of(descriptors: np.ndarray) -> np.ndarray:
    """Descriptors of the mirror image (``verify.mirror_features``), a harder query: few true matches."""
    from matcher.features.sift import LocalFeatures

    n = len(descriptors)
    features = LocalFeatures(np.zeros((n, 2), np.float32), descriptors, (100, 100), 1.0)
    return mirror_features(features).descriptors
