"""Multi-photo layouts: the tiles of a grid listing (a sheet of photos separated by uniform gutters), so that the
region search can look at each photo on its own.

Sellers post grids of 2x2 up to 4x4 photos; the copied product may be one tile of nine or sixteen, too small in
the whole image and in any of the region search's half-size windows (``regions.py``) to be found. A gutter is a
line of pixels of one colour that crosses the whole sheet: its grey values barely vary along it. A grid is at
least two bands of content between such lines in both directions, of regular sizes (a photo with a uniform band
of sky or wall gives at most one direction, or irregular sizes).
"""
from __future__ import annotations

from PIL import Image
import numpy as np

GUTTER_STD = 4.0  # grey levels: a gutter line's pixels vary less than this along it (JPEG noise included)
WORK_SIDE = 1200  # pixels: larger images are reduced by an integer factor first (gutters of 2 px stay >= 1 px)
MAX_TILES_PER_SIDE = 5
MIN_TILE_SHARE = 0.12  # of the side: a band of content narrower than this is not a tile
MAX_SIZE_RATIO = 1.6  # largest over smallest tile side along one direction


def grid_tiles(image: Image.Image) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) pixel boxes of the tiles of a grid listing, row by row; [] when the image is
    not a grid of at least 3 tiles along one side (a 2x2 grid's tiles are the region search's quadrants)."""
    factor = max(1, int(np.ceil(max(image.size) / WORK_SIDE)))
    grey = np.asarray((image.reduce(factor) if factor > 1 else image).convert("L"), np.float32)
    rows, cols = _bands(grey.std(axis=1)), _bands(grey.std(axis=0))
    if len(rows) < 2 or len(cols) < 2 or max(len(rows), len(cols)) < 3:
        return []
    return [(left * factor, top * factor, right * factor, bottom * factor)
            for top, bottom in rows for left, right in cols]


def _bands(spread: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of lines that are not gutters (``spread``: each line's grey std), when they make a
    regular division of the side; [] otherwise."""
    content = spread >= GUTTER_STD
    edges = np.flatnonzero(np.diff(np.concatenate([[0], content.astype(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
    side = len(spread)
    runs = [(a, b) for a, b in runs if b - a >= MIN_TILE_SHARE * side]
    if not 2 <= len(runs) <= MAX_TILES_PER_SIDE:
        return []
    sizes = [b - a for a, b in runs]
    return runs if max(sizes) <= MAX_SIZE_RATIO * min(sizes) else []
