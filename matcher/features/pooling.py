"""Feature map -> descriptors: generalised-mean (GeM) pooling of the whole map and of WINDOWS parts of it.

All functions take and return float32 numpy arrays; shapes are in each docstring.
"""
from __future__ import annotations

import numpy as np


def powered(feature_map: np.ndarray, p: float) -> np.ndarray:
    """max(x, 1e-6) ** p elementwise, float32 (n, c, h, w); integer p by multiplication (much cheaper than a
    float power)."""
    clipped = np.maximum(feature_map, np.float32(1e-6))
    if float(p).is_integer() and 1 <= p <= 4:
        out = clipped.copy()
        for _ in range(int(p) - 1):
            out *= clipped
        return out
    return np.power(clipped, np.float32(p))


def _root(means: np.ndarray, p: float) -> np.ndarray:
    return np.power(means, 1.0 / p).astype(np.float32)


def gem(feature_map: np.ndarray, p: float, *, powered_map: np.ndarray | None = None) -> np.ndarray:
    """Generalised-mean pooling: float32 (n, c, h, w) -> (n, c). p=1 is average pooling, large p tends to max.
    ``powered_map``: ``powered(feature_map, p)`` when the caller has it already."""
    raised = powered(feature_map, p) if powered_map is None else powered_map
    return _root(raised.mean(axis=(2, 3)), p)


WINDOWS = 5  # feature-map windows per image: 4 overlapping quadrants + the centre


def window_descriptors(feature_map: np.ndarray, p: float, *, powered_map: np.ndarray | None = None) -> np.ndarray:
    """GeM of WINDOWS parts of a feature map (n, c, h, w): the four corner windows (~55% of each side) and the
    centre (60%) -> L2-normalised float32 (n, WINDOWS, c). ``powered_map``: ``powered(feature_map, p)`` when
    the caller has it already."""
    n, c, h, w = feature_map.shape
    kh, kw = max(1, round(0.55 * h)), max(1, round(0.55 * w))
    boxes = [(0, kh, 0, kw), (0, kh, w - kw, w), (h - kh, h, 0, kw), (h - kh, h, w - kw, w),
             (h // 5, h - h // 5, w // 5, w - w // 5)]
    averaging = np.zeros((WINDOWS, h, w), np.float32)  # each window's mean as one matrix product
    for k, (top, bottom, left, right) in enumerate(boxes):
        averaging[k, top:bottom, left:right] = 1.0 / ((bottom - top) * (right - left))
    raised = powered(feature_map, p) if powered_map is None else powered_map
    means = raised.reshape(n * c, h * w) @ averaging.reshape(WINDOWS, h * w).T  # (n * c, WINDOWS)
    pooled = _root(np.maximum(means, 0.0), p).reshape(n, c, WINDOWS).transpose(0, 2, 1)
    return l2_normalise(pooled.reshape(n * WINDOWS, c)).reshape(n, WINDOWS, c)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); float32 (n, d)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
