"""Tests for matcher.building.augment: determinism, output format, and that every edit runs on awkward sizes."""
from __future__ import annotations

from PIL import Image
import numpy as np
import pytest

from matcher.building import augment, edits
from matcher.inputs.everyday import everyday_photos


def _photo(width: int, height: int) -> Image.Image:
    """A synthetic colourful test image: gradients plus a dark square."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=-1)
    pixels[height // 4: height // 2, width // 4: width // 2] = 20
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def backgrounds() -> list[Image.Image]:
    return everyday_photos()


def _check_listing_image(image: Image.Image) -> None:
    assert image.mode == "RGB"
    assert max(image.size) <= edits.MAX_SIDE
    assert min(image.size) >= 1


def test_everyday_photos_are_rgb_and_plenty(backgrounds):
    assert len(backgrounds) >= 8
    for photo in backgrounds:
        _check_listing_image(photo)


@pytest.mark.parametrize("seed", range(6))
def test_same_seed_gives_identical_bytes(seed, backgrounds):
    image = _photo(420, 300)
    first, first_desc = augment.copy_edit(image, np.random.default_rng(seed), backgrounds)
    second, second_desc = augment.copy_edit(image, np.random.default_rng(seed), backgrounds)
    assert first_desc == second_desc
    assert first.size == second.size and first.tobytes() == second.tobytes()
    listing_a, desc_a = augment.listing_edit(image, np.random.default_rng(seed))
    listing_b, desc_b = augment.listing_edit(image, np.random.default_rng(seed))
    assert desc_a == desc_b and listing_a.tobytes() == listing_b.tobytes()


def test_different_seeds_give_different_chains(backgrounds):
    image = _photo(300, 300)
    descriptions = {augment.copy_edit(image, np.random.default_rng(seed), backgrounds)[1] for seed in range(20)}
    assert len(descriptions) > 15


def test_copy_edit_outputs_are_rgb_and_small(backgrounds):
    image = _photo(900, 500)  # bigger than a listing: the output must still be <= 640
    rng = np.random.default_rng(0)
    for _ in range(60):
        edited, description = augment.copy_edit(image, rng, backgrounds)
        _check_listing_image(edited)
        names = [part.split("(")[0] for part in description.split("+")]
        assert 1 <= len(names) <= 3 and len(set(names)) == len(names)
        assert set(names) <= set(augment.COPY_EDITS)
        is_scene = [name in augment.COMPOSITE_EDITS for name in names]
        assert is_scene == sorted(is_scene), "scene edits (screenshot, collage, ...) come last"


@pytest.mark.parametrize("name", sorted(augment.COPY_EDITS))
@pytest.mark.parametrize("size", [(24, 24), (37, 90), (400, 150)])
def test_every_copy_edit_runs_on_small_and_non_square_images(name, size, backgrounds):
    rng = np.random.default_rng(7)
    for with_backgrounds in (backgrounds, ()):
        edited, description = augment.apply_chain(_photo(*size), [name], rng, with_backgrounds)
        _check_listing_image(edited)
        assert description.startswith(name)


def test_listing_edit_is_light_and_often_unedited():
    image = _photo(348, 464)
    rng = np.random.default_rng(3)
    descriptions = []
    for _ in range(200):
        edited, description = augment.listing_edit(image, rng)
        _check_listing_image(edited)
        descriptions.append(description)
    unedited = sum(d == "" for d in descriptions) / len(descriptions)
    assert 0.45 < unedited < 0.75
    used = {part.split("(")[0] for d in descriptions if d for part in d.split("+")}
    assert used <= set(augment.LISTING_EDITS)


def test_unedited_listing_is_finished_like_an_upload():
    image = _photo(1000, 200).convert("RGBA")
    results = [augment.listing_edit(image, np.random.default_rng(seed)) for seed in range(10)]
    unedited = [edited for edited, description in results if description == ""]
    assert unedited, "about 60% of listings are unedited"
    for edited in unedited:
        _check_listing_image(edited)
        assert edited.size == (640, 128)


@pytest.mark.parametrize("min_area", [0.2, 0.6])
def test_random_crop_stays_inside_and_is_big_enough(min_area):
    image = _photo(500, 300)
    rng = np.random.default_rng(1)
    for _ in range(50):
        region = edits.random_crop(image, rng, min_area=min_area)
        assert region.width <= 500 and region.height <= 300
        # aspect clipping can cost a little area, never more than a factor 4/3
        assert region.width * region.height >= 0.74 * min_area * 500 * 300 * 0.99


def test_a_recoloured_photo_keeps_its_shapes_and_lightness_but_not_its_hues():
    rng = np.random.default_rng(7)
    photo = _photo(160, 120)
    turned, description = edits.hue_rotate(photo, rng)
    assert description.startswith("hue_rotate(") and turned.size == photo.size
    hsv_before, hsv_after = (np.asarray(im.convert("HSV")).astype(int) for im in (photo, turned))
    coloured = hsv_before[..., 1] > 60
    turn = (hsv_after[..., 0] - hsv_before[..., 0]) % 256
    assert 40 <= np.median(turn[coloured]) <= 216  # every hue moved by 60-300 degrees
    assert np.abs(hsv_after[..., 2] - hsv_before[..., 2]).mean() < 3  # brightness kept


def test_recoloured_listings_hide_only_their_own_photo(backgrounds):
    from matcher.building.calibration import make_listings

    rng = np.random.default_rng(8)
    images = [_photo(120, 90), _photo(90, 120), _photo(100, 100)]
    listings = make_listings(images, ["a", "a", "b"], [10, 11, 12], backgrounds, rng, copies_per_reference=1,
                             background_count=2, recoloured_share=1.0)
    recoloured = [s for s in listings if s.kind == "recoloured"]
    # brand b has one photo: hiding it would leave nothing of the brand to verify against
    assert sorted((s.brand, tuple(s.exclude)) for s in recoloured) == [("a", (10,)), ("a", (11,))]
    assert all(s.ref_id == -1 for s in recoloured)
