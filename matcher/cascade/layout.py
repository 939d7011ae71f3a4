"""Multi-photo layouts: the panels of a listing made of several photos separated by uniform gutters, so that the
region search can look at each photo on its own.

Sellers post grids of 2x2 up to 4x4 photos and collages of one large photo beside a strip of small ones; the
copied product may be one panel of nine or sixteen, or one small photo of the strip, too small in the whole image
and in any of the region search's half-size windows (``regions.py``) to be found. A gutter is a line of pixels of
one colour that crosses its part of the sheet: its grey values barely vary along it. Two layouts are recognised:

* a **grid**: gutters crossing the whole sheet split both sides into 2-5 bands of content of regular sizes, at
  least 3 along one side (a 2x2 grid's panels are the region search's quadrants already);
* a **photo beside a strip**: gutters crossing the whole sheet split it, along one side, into exactly two parts,
  the larger (the photo) does not split the other way, and the smaller (at most 1/MIN_MAIN_RATIO of it) splits
  the other way into 2-5 regular panels.

Regular sizes (largest at most MAX_SIZE_RATIO of the smallest) are what keeps ordinary photos out: a band of sky
or a white product background can be uniform across a photo, but it does not cut the photo into regular panels
(none of devbench's 1,000 queries and 222 references is taken for a layout).
"""
from __future__ import annotations

from PIL import Image
import numpy as np

GUTTER_STD = 4.0  # grey levels: a gutter line's pixels vary less than this along it (JPEG noise included)
WORK_SIDE = 1200  # pixels: larger images are reduced by an integer factor first (gutters of 2 px stay >= 1 px)
MIN_PANEL_SHARE = 0.12  # of the side being cut: a band of content narrower than this is not a photo
MAX_PANELS_PER_SIDE = 5
MAX_SIZE_RATIO = 1.6  # largest over smallest panel side along one direction
MIN_MAIN_RATIO = 1.3  # the photo beside a strip is at least this many times the strip's width

Box = tuple[int, int, int, int]  # (left, top, right, bottom), pixels


def photo_panels(image: Image.Image) -> list[Box]:
    """Pixel boxes of the photos of a grid (row by row) or of a photo beside a strip (the photo first); [] when
    the image is neither."""
    factor = max(1, int(np.ceil(max(image.size) / WORK_SIDE)))
    grey = np.asarray((image.reduce(factor) if factor > 1 else image).convert("L"), np.float32)
    height, width = grey.shape
    rows, cols = _runs(grey.std(axis=1)), _runs(grey.std(axis=0))
    panels: list[Box] = []
    if _regular(rows) and _regular(cols) and max(len(rows), len(cols)) >= 3:
        panels = [(left, top, right, bottom) for top, bottom in rows for left, right in cols]
    elif len(cols) == 2:  # side by side: the photo and a strip of photos one above the other
        panels = _beside(grey, cols, vertical=False)
    elif len(rows) == 2:  # one above the other: the photo and a strip of photos side by side
        panels = _beside(grey, rows, vertical=True)
    return [(left * factor, top * factor, right * factor, bottom * factor) for left, top, right, bottom in panels]


def _beside(grey: np.ndarray, parts: list[tuple[int, int]], vertical: bool) -> list[Box]:
    """[the photo, the strip's panels] when the smaller of two ``parts`` (runs along the sheet's height if
    ``vertical``, else its width) splits the other way into regular panels; [] otherwise."""
    main, strip = sorted(parts, key=lambda run: run[0] - run[1])
    if main[1] - main[0] < MIN_MAIN_RATIO * (strip[1] - strip[0]):
        return []  # two halves: a 2x2 grid, or two photos side by side (the quadrants see both)
    height, width = grey.shape
    axis = 0 if vertical else 1  # the strip is cut across the lines that make ``parts``
    part = (lambda run: grey[run[0]:run[1]]) if vertical else (lambda run: grey[:, run[0]:run[1]])
    cells, inside = _runs(part(strip).std(axis=axis)), _runs(part(main).std(axis=axis))
    if len(inside) > 1 or len(cells) < 2 or not _regular(cells):
        return []
    if vertical:
        return [(0, main[0], width, main[1])] + [(a, strip[0], b, strip[1]) for a, b in cells]
    return [(main[0], 0, main[1], height)] + [(strip[0], a, strip[1], b) for a, b in cells]


def _regular(runs: list[tuple[int, int]]) -> bool:
    """2 to MAX_PANELS_PER_SIDE runs of sizes within MAX_SIZE_RATIO of each other."""
    sizes = [b - a for a, b in runs]
    return 2 <= len(sizes) <= MAX_PANELS_PER_SIDE and max(sizes) <= MAX_SIZE_RATIO * min(sizes)


def _runs(spread: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of lines that are not gutters (``spread``: each line's grey std), at least
    MIN_PANEL_SHARE of the side long."""
    content = spread >= GUTTER_STD
    edges = np.flatnonzero(np.diff(np.concatenate([[0], content.astype(np.int8), [0]])))
    side = len(spread)
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if b - a >= MIN_PANEL_SHARE * side]
