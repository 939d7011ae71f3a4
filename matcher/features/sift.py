"""Geometric re-checking of candidate matches with local features.

The CNN + FAISS search proposes a few reference photos for a listing image; this
module confirms or rejects each one: SIFT keypoints on a grey copy resized to
``long_side`` pixels, RootSIFT descriptors, Lowe's ratio test (``matching.py``), then a RANSAC
homography. The matches that agree with it (the *inliers*) are the evidence: an
edited copy (crop, rotation, perspective, text, JPEG, blur, ...) keeps many, an
unrelated photo few.

Coordinates
-----------
``LocalFeatures.points`` are stored in pixels of the ORIGINAL image (the one passed
to :func:`extract_local_features`), so that evidence can be drawn on it directly.
``LocalFeatures.scale`` records the resize factor used for detection
(``resized = original * scale``). RANSAC works in the resized frame
(``points * scale``), so ``ransac_px`` means the same thing for every image size.

Mirrored copies
---------------
:func:`mirror_features` gives the features of the horizontally flipped image by
permuting descriptor bins (what SIFT computes on the flipped image, for free).
Its points stay in the unflipped image's coordinates, with ``mirrored=True``.

Storage
-------
Descriptors are RootSIFT (L1-normalise, square root) stored as ``uint8`` =
``round(512 * value)``. :func:`pack_features` / :func:`unpack_features` turn a list
of features into flat arrays (for ``np.savez``) and back, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from PIL import Image
import cv2
import numpy as np

from .matching import Descriptors, prepare, ratio_matches

DESCRIPTOR_SCALE = 512.0
"""RootSIFT values lie in [0, 1] and rarely exceed 0.35; ``uint8 = round(512 * value)``."""

# A homography is rejected when, anywhere in the box spanned by its query inliers,
# it flips orientation, sends points to infinity, or changes the local scale (square
# root of area ratio) by more than this factor or the aspect by more than MAX_ANISOTROPY.
MAX_SCALE_CHANGE = 8.0
MAX_ANISOTROPY = 6.0

# Descriptor bin order for a horizontal flip: descriptors are 4 x 4 spatial cells x 8
# orientation bins in the keypoint's own frame; a mirror image reverses the cell rows
# and maps orientation bin k to bin (8 - k) % 8.
_MIRROR_PERMUTATION = (
    np.arange(128).reshape(4, 4, 8)[::-1][:, :, (8 - np.arange(8)) % 8].reshape(128)
)


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints and descriptors of one image.

    Attributes
    ----------
    points : np.ndarray
        (n, 2) float32, x, y in pixels of the original image (see module docstring).
    descriptors : np.ndarray
        (n, 128) uint8, RootSIFT multiplied by ``DESCRIPTOR_SCALE``.
    size : tuple[int, int]
        (width, height) of the original image.
    scale : float
        Resize factor used for detection: resized pixels = original pixels * scale.
    mirrored : bool
        True for features made by :func:`mirror_features`.
    """

    points: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]
    scale: float
    mirrored: bool = False

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class Verification:
    """Outcome of :func:`verify_pair`.

    Attributes
    ----------
    inliers : int
        Matches consistent with the RANSAC homography; 0 when there are fewer than
        4 matches or the homography is degenerate.
    matches : int
        Matches that passed the ratio test (in the best of plain / mirrored query).
    mirrored : bool
        True when the mirrored query gave the result.
    query_points : np.ndarray
        (inliers, 2) float32, inlier points in original query image pixels.
    reference_points : np.ndarray
        (inliers, 2) float32, the matching points in original reference image pixels.
    reference_index : np.ndarray
        (inliers,) int64, which of the reference's keypoints each inlier is (rows of its ``points``).
    """

    inliers: int
    matches: int
    mirrored: bool
    query_points: np.ndarray
    reference_points: np.ndarray
    reference_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def extract_local_features(
    image: Image.Image, *, long_side: int = 512, max_features: int = 1000
) -> LocalFeatures:
    """Detect SIFT keypoints and compute RootSIFT descriptors.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode; it is converted to grey ("L").
    long_side : int
        The image is resized (up or down) so that its longer side has this many pixels.
    max_features : int
        Keep at most this many keypoints (the strongest ones).

    Returns
    -------
    LocalFeatures
        Possibly empty (n = 0), e.g. for a blank image.
    """
    width, height = image.size
    if width == 0 or height == 0:
        return LocalFeatures(_empty(2, np.float32), _empty(128, np.uint8), (width, height), 1.0)
    scale = long_side / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    grey = np.asarray(image.convert("L"))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    grey = cv2.resize(grey, new_size, interpolation=interpolation)

    sift = cv2.SIFT_create(nfeatures=max_features)
    keypoints, raw = sift.detectAndCompute(grey, None)
    if raw is None or len(keypoints) == 0:
        points, descriptors = _empty(2, np.float32), _empty(128, np.uint8)
    else:
        # SIFT may return a few more than nfeatures when responses tie.
        keypoints, raw = keypoints[:max_features], raw[:max_features]
        points = np.array([kp.pt for kp in keypoints], np.float32) / np.float32(scale)
        root = np.sqrt(raw / (raw.sum(axis=1, keepdims=True) + 1e-7))
        descriptors = np.clip(np.rint(root * DESCRIPTOR_SCALE), 0, 255).astype(np.uint8)
    return LocalFeatures(points, descriptors, (width, height), float(scale))


def mirror_features(features: LocalFeatures) -> LocalFeatures:
    """Features of the horizontally flipped image, for catching mirrored copies.

    Only the descriptors change (bins are permuted); points stay in the unflipped
    image's coordinates and ``mirrored`` becomes True. Applying it twice gives back
    the original features.
    """
    return LocalFeatures(
        points=features.points,
        descriptors=np.ascontiguousarray(features.descriptors[:, _MIRROR_PERMUTATION]),
        size=features.size,
        scale=features.scale,
        mirrored=not features.mirrored,
    )


def verify_pair(
    query: LocalFeatures,
    reference: LocalFeatures,
    *,
    query_mirrored: LocalFeatures | None = None,
    ratio: float = 0.8,
    ransac_px: float = 6.0,
) -> Verification:
    """Count RANSAC homography inliers between a query and a reference image.

    Parameters
    ----------
    query, reference : LocalFeatures
        From :func:`extract_local_features`.
    query_mirrored : LocalFeatures, optional
        ``mirror_features(query)``; when given, the better of the two is returned.
    ratio : float
        Lowe ratio: keep a match when best distance < ratio * second-best distance.
    ransac_px : float
        RANSAC reprojection threshold in pixels of the resized (long side) frame.

    Returns
    -------
    Verification
    """
    return verify_against(query, [reference], query_mirrored=query_mirrored, ratio=ratio, ransac_px=ransac_px)[0]


def verify_against(
    query: LocalFeatures,
    references: Sequence[LocalFeatures],
    *,
    query_mirrored: LocalFeatures | None = None,
    mirror_unless: int = 0,
    ratio: float = 0.8,
    ransac_px: float = 6.0,
) -> list[Verification]:
    """:func:`verify_pair` of one query with each of ``references`` (same order); the query's descriptors are
    prepared once for all of them.

    mirror_unless : skip the mirror image altogether when the query as it is already verifies some reference
        with at least this many inliers (it is not a mirrored copy; the mirror would only cost time); 0: never
        skip it
    """
    plain = prepare(query.descriptors)
    prepared = [prepare(r.descriptors) for r in references]
    results = [_verify_one(query, plain, r, descriptors, ratio, ransac_px)
               for r, descriptors in zip(references, prepared)]
    strong = mirror_unless > 0 and any(v.inliers >= mirror_unless for v in results)
    if query_mirrored is None or strong:
        return results
    mirrored = prepare(query_mirrored.descriptors)
    for k, (reference, descriptors) in enumerate(zip(references, prepared)):
        found = _verify_one(query_mirrored, mirrored, reference, descriptors, ratio, ransac_px)
        if found.inliers > results[k].inliers:  # ties keep the plain one
            results[k] = found
    return results


def _verify_one(
    query: LocalFeatures, query_descriptors: Descriptors, reference: LocalFeatures,
    reference_descriptors: Descriptors, ratio: float, ransac_px: float,
) -> Verification:
    query_idx, ref_idx = ratio_matches(query_descriptors, reference_descriptors, ratio)
    nothing = Verification(
        0, len(query_idx), query.mirrored, _empty(2, np.float32), _empty(2, np.float32)
    )
    if len(query_idx) < 4:
        return nothing

    src = _working_frame(query)[query_idx]
    dst = _working_frame(reference)[ref_idx]
    # USAC_ACCURATE (graph-cut RANSAC with local optimisation) gives the same inlier
    # counts as cv2.RANSAC on the demo catalog but is much faster on pairs with few
    # true matches (figures: docs/benchmarks.md), and it is deterministic (fixed
    # internal random seed).
    homography, mask = cv2.findHomography(
        src, dst, cv2.USAC_ACCURATE, ransac_px, maxIters=2000, confidence=0.995
    )
    if homography is None or mask is None:
        return nothing
    keep = mask.ravel().astype(bool)
    if keep.sum() < 4 or not _is_plausible(homography, src[keep]):
        return nothing
    return Verification(
        inliers=int(keep.sum()),
        matches=len(query_idx),
        mirrored=query.mirrored,
        query_points=query.points[query_idx[keep]],
        reference_points=reference.points[ref_idx[keep]],
        reference_index=ref_idx[keep],
    )


def _working_frame(features: LocalFeatures) -> np.ndarray:
    """(n, 2) float32 points in the resized detection frame, un-mirrored if needed."""
    points = features.points * np.float32(features.scale)
    if features.mirrored:
        width = features.size[0] * features.scale
        points = np.column_stack([width - points[:, 0], points[:, 1]])
    return np.ascontiguousarray(points, dtype=np.float32)


def _is_plausible(homography: np.ndarray, query_inliers: np.ndarray) -> bool:
    """Reject homographies that no edit of a photo would produce.

    Checked at the four corners of the box around the query inliers: the mapping
    must keep points in front of the camera (w > 0), keep orientation (a mirror is
    handled by mirrored features instead), and change the local scale by at most
    ``MAX_SCALE_CHANGE`` and the aspect by at most ``MAX_ANISOTROPY``.
    """
    if not np.all(np.isfinite(homography)):
        return False
    (x0, y0), (x1, y1) = query_inliers.min(axis=0), query_inliers.max(axis=0)
    for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
        w = homography[2, 0] * x + homography[2, 1] * y + homography[2, 2]
        if w <= 1e-9:
            return False
        u = (homography[0, 0] * x + homography[0, 1] * y + homography[0, 2]) / w
        v = (homography[1, 0] * x + homography[1, 1] * y + homography[1, 2]) / w
        # Jacobian of (x, y) -> (u, v) at this corner.
        jacobian = (homography[:2, :2] - np.outer([u, v], homography[2, :2])) / w
        if np.linalg.det(jacobian) <= 0:
            return False
        largest, smallest = np.linalg.svd(jacobian, compute_uv=False)
        local_scale = np.sqrt(largest * smallest)
        if not 1 / MAX_SCALE_CHANGE <= local_scale <= MAX_SCALE_CHANGE:
            return False
        if largest > MAX_ANISOTROPY * smallest:
            return False
    return True


def affine_error(found: Verification, query: LocalFeatures, reference: LocalFeatures) -> float:
    """Median distance of a verified pair's inliers from the best affine map between them (least median of
    squares), in pixels of the coarser of the two working frames (where SIFT's localisation noise is largest:
    a crop upscaled for detection must not be held to its finer pixels); inf with fewer than 3 inliers.

    An edit of one photo (crop, resize, rotation, padding, mirror, overlay) moves its pixels by an affine map, so
    the inliers of two copies agree with one to SIFT's localisation noise (a fraction of a pixel); two shots of
    one scene differ by perspective and parallax, which a homography over a package absorbs but an affine map
    over all inliers does not.
    """
    if found.inliers < 3:
        return float("inf")
    source = found.query_points.astype(np.float64)
    if found.mirrored:
        source = np.column_stack([query.size[0] - source[:, 0], source[:, 1]])
    target = found.reference_points.astype(np.float64)
    affine, _ = cv2.estimateAffine2D(source, target, method=cv2.LMEDS)
    if affine is None:
        return float("inf")
    residual = np.linalg.norm(source @ affine[:, :2].T + affine[:, 2] - target, axis=1)  # reference pixels
    stretch = np.sqrt(abs(np.linalg.det(affine[:, :2])))  # reference pixels per query pixel
    coarser = max(stretch / query.scale, 1.0 / reference.scale)  # reference pixels per coarser working pixel
    return float(np.median(residual) / coarser)


def _empty(columns: int, dtype) -> np.ndarray:
    """A (0, columns) array."""
    return np.zeros((0, columns), dtype)


def pack_features(features: Sequence[LocalFeatures]) -> dict[str, np.ndarray]:
    """Concatenate many images' features into flat arrays, e.g. for ``np.savez``.

    Returns
    -------
    dict[str, np.ndarray]
        ``points`` (N, 2) float32, ``descriptors`` (N, 128) uint8,
        ``offsets`` (k + 1,) int64 (image i owns rows offsets[i]:offsets[i+1]),
        ``sizes`` (k, 2) int64, ``scales`` (k,) float64, ``mirrored`` (k,) bool.
    """
    lengths = [len(f) for f in features]
    return {
        "points": np.concatenate([f.points for f in features] or [_empty(2, np.float32)]),
        "descriptors": np.concatenate(
            [f.descriptors for f in features] or [_empty(128, np.uint8)]
        ),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "sizes": np.array([f.size for f in features], np.int64).reshape(-1, 2),
        "scales": np.array([f.scale for f in features], np.float64),
        "mirrored": np.array([f.mirrored for f in features], bool),
    }


def unpack_features(arrays: Mapping[str, np.ndarray]) -> list[LocalFeatures]:
    """Inverse of :func:`pack_features` (works on an ``np.load`` result too)."""
    points = np.asarray(arrays["points"], np.float32)
    descriptors = np.asarray(arrays["descriptors"], np.uint8)
    offsets, sizes = np.asarray(arrays["offsets"]), np.asarray(arrays["sizes"])
    scales, mirrored = np.asarray(arrays["scales"]), np.asarray(arrays["mirrored"])
    return [
        LocalFeatures(
            points=points[offsets[i] : offsets[i + 1]],
            descriptors=descriptors[offsets[i] : offsets[i + 1]],
            size=(int(sizes[i, 0]), int(sizes[i, 1])),
            scale=float(scales[i]),
            mirrored=bool(mirrored[i]),
        )
        for i in range(len(offsets) - 1)
    ]
