"""Colour check of a verified match: does the listing show the reference's colours where the two photos align?

Sister products share a logo and a carton shape but not their colours (an apple juice and an orange juice of one
maker, green on one and orange on the other). SIFT works on grey images, so their logos verify with many inliers.
This stage maps a grid of points around the reference's inliers into the listing through the homography that the
inliers define, and compares the hues found at both ends.

The comparison is in the CIELAB a*, b* plane (chroma: colour without lightness). Two colours u, v there differ in
hue by the angle between them; a point's *hue difference* is ``min(|u|, |v|) * (1 - cos(angle))``. It is 0 when
either colour is grey, so a greyscale or desaturated copy (an edit a copier makes) measures no difference, and it
is small for lighting and saturation changes, which keep the hue. Another colour of the same carton (green for
orange) is a large angle between two saturated colours. Three statistics are kept (``ColourDifference``): the
*typical* difference (median) near the inliers, for a package of another colour; the *mismatch*, the share of the
points near the inliers where both colours are saturated and their hues lie more than ``MISMATCH_DEGREES`` apart
(a green carton against a yellow one: a clear angle, which the typical difference compresses to little); and
the *patch* difference (90th percentile) over a wider area, for a variant that keeps the logo and most of the
package but changes a band or a picture (two cartons of one dairy: the logo verifies, the variant's coloured band
does not agree).

Produce gives no homography (a green pepper has no logo), so there is a coarser check too: the chroma-weighted
histograms of hue angles over the centres of the listing and of the reference (where a product photo shows the
product), compared by their overlap (``hue_histogram``, ``hue_agreement``): a green pepper against yellow ones.

Both images are compared small: the listing at ``COLOUR_SIDE`` pixels on its longer side, the reference through its
stored thumbnail (``inputs.images.thumbnail_jpeg``).
"""
from __future__ import annotations

import io
from typing import NamedTuple

from PIL import Image
import cv2
import numpy as np

COLOUR_SIDE = 160  # longer side (pixels) of the listing image the colours are read from
MIN_INLIERS = 8  # fewer inliers give too loose a homography to compare colours through
GRID = 24  # points per side of the sampled grid
MARGIN = 0.5  # the inliers' box is grown by this fraction of its size on each side
PATCH_MARGIN = 1.0  # ... and by this much for the patch difference
PATCH_PERCENTILE = 90  # the patch difference: this percentile of the wider grid's hue differences
MIN_POINTS = 50  # grid points that must land inside the listing for a measurement
MISMATCH_CHROMA = 20.0  # a*, b* length both colours of a point need for its hues to count in the mismatch
MISMATCH_DEGREES = 35.0  # hue angle beyond which two saturated colours count as different (white balance and
# lighting turn a saturated colour's hue by less, so other photos of the same product have few such points and a
# sister carton of another colour has more; figures: docs/benchmarks.md)


def colour_pixels(image: Image.Image, long_side: int = COLOUR_SIDE) -> np.ndarray:
    """RGB image -> uint8 RGB array (h, w, 3), at most ``long_side`` pixels on its longer side."""
    small = image.convert("RGB")
    if max(small.size) > long_side:
        small = small.copy()
        small.thumbnail((long_side, long_side), Image.Resampling.BILINEAR)
    return np.asarray(small)


def thumbnail_pixels(jpeg: bytes) -> np.ndarray:
    """A stored reference thumbnail (JPEG bytes) -> its pixels, as ``colour_pixels``."""
    return colour_pixels(Image.open(io.BytesIO(jpeg)))


class ColourDifference(NamedTuple):
    """How a verified match's colours differ (hue differences, 0-256 in CIELAB a*, b* units).

    typical : median over a grid around the inliers (their box grown by ``MARGIN`` on each side): large when the
        whole package has another colour (orange juice against its apple sister)
    patch : ``PATCH_PERCENTILE``-th percentile over a wider grid (the box grown by ``PATCH_MARGIN``): large when a
        band or patch has another colour while the logo and most of the package agree (two variants of one
        dairy's carton)
    mismatch : share (0-1) of the typical difference's grid points where both colours are saturated and their
        hues differ by more than ``MISMATCH_DEGREES`` (``hue_mismatch``)
    """

    typical: float
    patch: float
    mismatch: float


def colour_distance(listing_rgb: np.ndarray, listing_size: tuple[int, int], reference_rgb: np.ndarray,
                    reference_size: tuple[int, int], listing_points: np.ndarray,
                    reference_points: np.ndarray) -> ColourDifference | None:
    """Hue differences (module docstring) where the inliers' homography aligns the two photos; None when they
    cannot be measured. Edited copies and other photos of the same product measure small differences, a sister
    product of another colour a larger typical one, and a variant with another coloured band a larger patch one
    (figures: docs/benchmarks.md).

    listing_rgb, reference_rgb : small copies (``colour_pixels``) of images whose original sizes are
        ``listing_size`` and ``reference_size`` (width, height, pixels)
    listing_points, reference_points : (n, 2) matching inlier points, in original pixels of each image
    """
    if len(listing_points) < MIN_INLIERS:
        return None
    ref_pts = _to_pixels(reference_points, reference_rgb, reference_size)
    lis_pts = _to_pixels(listing_points, listing_rgb, listing_size)
    homography, _ = cv2.findHomography(ref_pts, lis_pts, 0)  # least squares over the inliers RANSAC kept
    if homography is None or not np.all(np.isfinite(homography)):
        return None
    near = _aligned_chroma(listing_rgb, reference_rgb, homography, ref_pts, MARGIN)
    if near is None:
        return None
    near_differences = hue_difference(*near)
    wide = _aligned_chroma(listing_rgb, reference_rgb, homography, ref_pts, PATCH_MARGIN)
    wide_differences = near_differences if wide is None else hue_difference(*wide)
    return ColourDifference(float(np.median(near_differences)),
                            float(np.percentile(wide_differences, PATCH_PERCENTILE)), hue_mismatch(*near))


def _aligned_chroma(listing_rgb: np.ndarray, reference_rgb: np.ndarray, homography: np.ndarray,
                    ref_pts: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray] | None:
    """CIELAB a*, b* (n, 2) of the reference and of the listing at a GRID x GRID lattice over the box of
    ``ref_pts`` (reference pixels) grown by ``margin`` of its size on each side, mapped into the listing by
    ``homography``; only the points landing inside the listing (None when fewer than MIN_POINTS do)."""
    low, high = ref_pts.min(axis=0), ref_pts.max(axis=0)
    grow = margin * (high - low)
    ref_h, ref_w = reference_rgb.shape[:2]
    low = np.maximum(low - grow, 0.0)
    high = np.minimum(high + grow, [ref_w - 1, ref_h - 1])
    xs, ys = np.meshgrid(np.linspace(low[0], high[0], GRID), np.linspace(low[1], high[1], GRID))
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    mapped = cv2.perspectiveTransform(grid[None], homography)[0]
    lis_h, lis_w = listing_rgb.shape[:2]
    inside = np.all(np.isfinite(mapped), axis=1) & (mapped[:, 0] >= 0) & (mapped[:, 0] <= lis_w - 1) \
        & (mapped[:, 1] >= 0) & (mapped[:, 1] <= lis_h - 1)
    if inside.sum() < MIN_POINTS:
        return None
    return _chroma_at(reference_rgb, grid[inside]), _chroma_at(listing_rgb, mapped[inside])


def _to_pixels(points: np.ndarray, pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(n, 2) points in original image pixels -> float32 (n, 2) in the small copy ``pixels`` of that image."""
    scale = np.array([pixels.shape[1] / size[0], pixels.shape[0] / size[1]])
    return (np.asarray(points, np.float64) * scale).astype(np.float32)


def _chroma_at(pixels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """CIELAB a*, b* (n, 2) of ``pixels`` at (n, 2) x, y points (nearest pixel)."""
    return _chroma(pixels[np.rint(points[:, 1]).astype(int), np.rint(points[:, 0]).astype(int)])


# sRGB (D65) -> CIE XYZ, each row divided by the white point's X, Y or Z (the constants of OpenCV's conversion)
_RGB_TO_WHITE_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                              [0.212671, 0.715160, 0.072169],
                              [0.019334, 0.119193, 0.950227]]) / np.array([[0.950456], [1.0], [1.088754]])


def _chroma(rgb: np.ndarray) -> np.ndarray:
    """(n, 3) uint8 sRGB -> (n, 2) float64 CIELAB a*, b*, grey at 0 (within 0.4 of OpenCV's conversion, which
    builds lookup tables on first use, a once-per-process cost larger than a batch's colour checks)."""
    linear = np.asarray(rgb, np.float64).reshape(-1, 3) / 255.0
    linear = np.where(linear <= 0.04045, linear / 12.92, ((linear + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_WHITE_XYZ.T
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], axis=1)


def _lengths_and_cosine(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 2) a*, b* chroma vectors of n point pairs -> (n,) |u|, (n,) |v| and (n,) cos(angle(u, v))."""
    norm_u, norm_v = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    return norm_u, norm_v, (u * v).sum(axis=1) / np.maximum(norm_u * norm_v, 1e-6)


def hue_difference(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(n, 2) a*, b* chroma vectors (centred on grey) -> (n,) ``min(|u|, |v|) * (1 - cos(angle(u, v)))``."""
    norm_u, norm_v, cosine = _lengths_and_cosine(u, v)
    return np.minimum(norm_u, norm_v) * (1.0 - cosine)


def hue_mismatch(u: np.ndarray, v: np.ndarray) -> float:
    """(n, 2) a*, b* chroma vectors of n point pairs -> share of the pairs where both are longer than
    ``MISMATCH_CHROMA`` and their angle exceeds ``MISMATCH_DEGREES`` (0 when n is 0)."""
    norm_u, norm_v, cosine = _lengths_and_cosine(u, v)
    saturated = (norm_u > MISMATCH_CHROMA) & (norm_v > MISMATCH_CHROMA)
    apart = saturated & (cosine < np.cos(np.radians(MISMATCH_DEGREES)))
    return float(apart.mean()) if len(u) else 0.0


HUE_BINS = 36  # 10 degrees each: a green pepper's green and a Granny Smith's yellower green fall apart
CHROMATIC = 12.0  # a*, b* length below which a pixel counts as grey (no hue)
MIN_CHROMATIC = 0.05  # share of the sampled pixels that must be coloured for a histogram


def hue_histogram(pixels: np.ndarray, centre: float = 0.6) -> np.ndarray | None:
    """Chroma-weighted histogram (HUE_BINS,) of hue angles over the central ``centre`` share (of each side) of
    an RGB array (``colour_pixels``; every other pixel), summing to 1; None when that region is (nearly) grey.
    Each pixel is shared linearly between the two bins nearest its hue, so a hue on a bin edge does not jump."""
    h, w = pixels.shape[:2]
    top, left = int(h * (1 - centre) / 2), int(w * (1 - centre) / 2)
    chroma = _chroma(pixels[top:h - top:2, left:w - left:2].reshape(-1, 3))
    length = np.linalg.norm(chroma, axis=1)
    keep = length >= CHROMATIC
    if keep.mean() < MIN_CHROMATIC:
        return None
    position = (np.arctan2(chroma[keep, 1], chroma[keep, 0]) + np.pi) / (2 * np.pi) * HUE_BINS - 0.5
    lower = np.floor(position)
    upper_share = position - lower  # bin b's centre is at position b
    lower = lower.astype(int) % HUE_BINS
    weight = length[keep]
    histogram = (np.bincount(lower, weights=weight * (1.0 - upper_share), minlength=HUE_BINS)
                 + np.bincount((lower + 1) % HUE_BINS, weights=weight * upper_share, minlength=HUE_BINS))
    return histogram / histogram.sum()


def hue_agreement(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Histogram intersection of two hue histograms in [0, 1]; 1 when either is grey (nothing to disagree on)."""
    if a is None or b is None:
        return 1.0
    return float(np.minimum(a, b).sum())
