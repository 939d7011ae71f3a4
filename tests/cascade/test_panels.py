"""Multi-photo listings: the photos of grids and of a photo beside a strip are found from the gutters between
them, an ordinary photo is not taken for one, and the copied photo in one tile of sixteen is matched to its brand."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PIL import Image
import numpy as np

from matcher.cascade import CascadeSettings, Matcher
from matcher.cascade.layout import photo_panels
from matcher.inputs import everyday_photos

DEMO = Path(__file__).resolve().parents[2] / "demo"


def grid_sheet(photos: list[Image.Image], side: int, size: int = 880, gutter: int = 6) -> tuple[Image.Image, list]:
    """A side x side sheet of ``photos`` (cycled) on white with ``gutter`` px between tiles; (sheet, tile boxes)."""
    tile = (size - gutter * (side + 1)) // side
    sheet = Image.new("RGB", (size, size), "white")
    boxes = []
    for k in range(side * side):
        left, top = gutter + (k % side) * (tile + gutter), gutter + (k // side) * (tile + gutter)
        sheet.paste(photos[k % len(photos)].convert("RGB").resize((tile, tile)), (left, top))
        boxes.append((left, top, left + tile, top + tile))
    return sheet, boxes


def beside_strip(photos: list[Image.Image], count: int, gutter: int = 5) -> tuple[Image.Image, list]:
    """A 960 x 640 sheet: a 640 px photo on the left, a strip of ``count`` photos on the right; (sheet, boxes)."""
    sheet = Image.new("RGB", (960, 640), (40, 40, 40))
    sheet.paste(photos[0].convert("RGB").resize((640, 640)), (0, 0))
    boxes = [(0, 0, 640, 640)]
    cell = (640 - (count - 1) * gutter) // count
    for k in range(count):
        top = k * (cell + gutter)
        sheet.paste(photos[k + 1].convert("RGB").resize((960 - 640 - gutter, cell)), (640 + gutter, top))
        boxes.append((640 + gutter, top, 960, top + cell))
    return sheet, boxes


def assert_boxes(found: list, expected: list) -> None:
    assert len(found) == len(expected)
    for (l0, t0, r0, b0), (l1, t1, r1, b1) in zip(found, expected):  # within a pixel or two of the truth
        assert max(abs(l0 - l1), abs(t0 - t1), abs(r0 - r1), abs(b0 - b1)) <= 2


def test_photos_of_grids_and_strips_are_found_and_photos_are_no_layouts():
    photos = everyday_photos()
    for side in (3, 4):
        sheet, boxes = grid_sheet(photos, side)
        assert_boxes(photo_panels(sheet), boxes)
    for count in (2, 3, 4):
        sheet, boxes = beside_strip(photos, count)
        assert_boxes(photo_panels(sheet), boxes)
        assert_boxes(photo_panels(sheet.transpose(Image.Transpose.TRANSPOSE)),  # the strip below the photo
                     [(t, l, b, r) for l, t, r, b in boxes])
    assert photo_panels(grid_sheet(photos, 2)[0]) == []  # a 2x2 grid's photos are the region search's quadrants
    for photo in [*photos, *(Image.open(p) for p in sorted((DEMO / "listings").glob("listing_*.jpg"))[:12])]:
        assert photo_panels(photo.convert("RGB")) == []


def test_a_copied_photo_in_one_tile_of_sixteen_is_matched(demo_index):
    reference = sorted((DEMO / "catalog" / "Tropicana-Apple-Juice").glob("*.jpg"))[0]
    fillers = everyday_photos()
    photos = fillers[:9] + [Image.open(reference)] + fillers[9:15]
    sheet, _ = grid_sheet(photos, 4)
    with_tiles = Matcher.open(demo_index).match(sheet)
    assert with_tiles.brand == "Tropicana-Apple-Juice" and with_tiles.verdict == "copy"
    without = Matcher.open(demo_index, settings=CascadeSettings(layout_panels=False)).match(sheet)
    assert without.score < with_tiles.score


def test_a_collage_unlike_the_catalog_is_not_dismissed_one_of_its_photos_may_be_a_copy(demo_index):
    """Every listing made unlike the catalog (likeness threshold above any cosine): an ordinary photo is dismissed,
    a photo beside a strip whose second small photo is a reference is checked in full and matched to its brand."""
    reference = sorted((DEMO / "catalog" / "Arla-Sour-Milk").glob("*.jpg"))[0]
    fillers = everyday_photos()
    sheet, _ = beside_strip([fillers[2], fillers[3], Image.open(reference), fillers[5]], 3)
    photo = Image.open(sorted((DEMO / "listings").glob("listing_*.jpg"))[0]).convert("RGB")

    def strict(settings: CascadeSettings = CascadeSettings()) -> Matcher:
        matcher = Matcher.open(demo_index, settings=settings)
        matcher.version = replace(matcher.version, scorer=replace(matcher.version.scorer, likeness_threshold=1.01))
        return matcher

    kept, photo_result = strict().match_many([sheet, photo])
    assert kept.checks == "full" and kept.brand == "Arla-Sour-Milk" and kept.verdict != "no_match"
    assert photo_result.checks in ("dismissed", "global")
    dismissed = strict(CascadeSettings(layouts_never_dismissed=False)).match(sheet)
    assert dismissed.checks == "dismissed" and dismissed.score < kept.score
