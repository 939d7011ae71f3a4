"""The colour check of verified matches: sister products share a logo, not their colours."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageEnhance
import numpy as np

from matcher.features.colour import (MIN_INLIERS, colour_distance, colour_pixels, hue_agreement, hue_histogram,
                                     thumbnail_pixels)
from matcher.features.sift import extract_local_features, mirror_features, verify_pair
from matcher.index.version import IndexVersion
from matcher.inputs.images import load_image, thumbnail_jpeg
from tests.conftest import DEMO


def carton(rng) -> Image.Image:
    """A 300 x 400 'carton': coloured panels and a pattern, like packaging."""
    image = Image.new("RGB", (300, 400), (230, 120, 30))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 300, 120), fill=(240, 240, 235))
    draw.ellipse((60, 150, 240, 330), fill=(30, 140, 60))
    for _ in range(40):
        x, y = rng.integers(0, 280, 2)
        draw.rectangle((x, y, x + 12, y + 12), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return image


def on_shelf(product: Image.Image, scale: float = 1.5, offset=(100, 60)) -> tuple[Image.Image, callable]:
    """The product photographed larger on a grey shelf; returns the listing and reference -> listing mapping."""
    listing = Image.new("RGB", (700, 720), (128, 128, 128))
    big = product.resize((int(product.width * scale), int(product.height * scale)))
    listing.paste(big, offset)
    return listing, lambda points: points * scale + np.asarray(offset, float)


def carton_on_shelf(seed: int):
    """A random carton, 30 points on it, its photo on a shelf and the carton -> photo mapping."""
    rng = np.random.default_rng(seed)
    reference = carton(rng)
    points = rng.uniform([20, 20], [280, 380], size=(30, 2))
    return (reference, points, *on_shelf(reference))


def measure_both(listing: Image.Image, reference: Image.Image, reference_points, to_listing):
    return colour_distance(colour_pixels(listing), listing.size, thumbnail_pixels(thumbnail_jpeg(reference)),
                           reference.size, to_listing(reference_points), reference_points)


def measure(listing: Image.Image, reference: Image.Image, reference_points, to_listing):
    """The typical hue difference, or None."""
    found = measure_both(listing, reference, reference_points, to_listing)
    return None if found is None else found.typical


def test_the_same_colours_measure_near_zero_and_a_recoloured_product_far():
    reference, points, listing, to_listing = carton_on_shelf(seed=0)
    same = measure(listing, reference, points, to_listing)
    assert same is not None and same < 0.5
    # the same carton in another colour (red and blue channels swapped: an orange carton turns blue)
    sister = Image.fromarray(np.asarray(reference)[:, :, ::-1].copy())
    recoloured, to_listing = on_shelf(sister)
    other_colour = measure(recoloured, reference, points, to_listing)
    assert other_colour > 20
    # a darker photo, a desaturated or a greyscale copy keep the hue: far less than another colour
    darker = Image.fromarray((np.asarray(listing) * 0.7).astype(np.uint8))
    assert measure(darker, reference, points, to_listing) < other_colour / 5
    assert measure(ImageEnhance.Color(listing).enhance(0.4), reference, points, to_listing) < other_colour / 5
    assert measure(listing.convert("L").convert("RGB"), reference, points, to_listing) < 0.5


def test_a_patch_of_another_colour_shows_in_the_patch_difference_only():
    reference, points, listing, to_listing = carton_on_shelf(seed=3)
    same = measure_both(listing, reference, points, to_listing)
    # a variant of the carton: the same packaging with a blue medallion instead of the green one
    variant = reference.copy()
    ImageDraw.Draw(variant).ellipse((60, 150, 240, 330), fill=(40, 70, 170))
    other = measure_both(on_shelf(variant)[0], reference, points, to_listing)
    assert other.typical < 2 and other.patch > 20, other
    assert same.patch < 2, same
    # a greyscale copy shows no patch of another colour either
    assert measure_both(listing.convert("L").convert("RGB"), reference, points, to_listing).patch < 2


def hue_turned(image: Image.Image, degrees: float) -> Image.Image:
    hue, saturation, value = image.convert("HSV").split()
    hue = hue.point(lambda h: int(h + degrees * 256 / 360) % 256)
    return Image.merge("HSV", (hue, saturation, value)).convert("RGB")


def test_a_moderate_turn_of_hue_shows_in_the_mismatch_but_white_balance_and_light_do_not():
    """A sister carton in a neighbouring colour (green for yellow, ~45 degrees) is a mismatch over most of the
    saturated package; a warmer light, a darker or a paler photo turns hues much less."""
    reference, points, listing, to_listing = carton_on_shelf(seed=0)
    same = measure_both(listing, reference, points, to_listing)
    sister = measure_both(on_shelf(hue_turned(reference, 45))[0], reference, points, to_listing)
    assert same.mismatch < 0.02 and sister.mismatch > 0.3, (same, sister)
    warm = Image.fromarray(np.clip(np.asarray(listing) * [1.08, 1.0, 0.88], 0, 255).astype(np.uint8))
    darker = Image.fromarray((np.asarray(listing) * 0.7).astype(np.uint8))
    for photo in (warm, darker, ImageEnhance.Color(listing).enhance(0.5), listing.convert("L").convert("RGB")):
        assert measure_both(photo, reference, points, to_listing).mismatch < sister.mismatch / 4


def test_too_few_inliers_or_a_region_outside_the_listing_cannot_be_measured():
    rng = np.random.default_rng(1)
    reference = carton(rng)
    listing, to_listing = on_shelf(reference)
    points = rng.uniform([20, 20], [280, 380], size=(MIN_INLIERS - 1, 2))
    assert measure(listing, reference, points, to_listing) is None
    points = rng.uniform([20, 20], [280, 380], size=(20, 2))
    assert measure(listing, reference, points, lambda p: p + 5000.0) is None


def best_colour_per_brand(version: IndexVersion, photo) -> dict[str, float]:
    """brand -> colour distance of the photo to the brand's reference with the most inliers (>= MIN_INLIERS)."""
    image = load_image(photo)
    query = extract_local_features(image, long_side=320)
    thumbnails, best = version.refs.load_thumbnails(), {}
    for record in version.refs.references:
        row = version.refs.row_of_id[record.id]
        found = verify_pair(query, version.refs.local_features[row], query_mirrored=mirror_features(query))
        distance = colour_distance(colour_pixels(image), image.size, thumbnail_pixels(thumbnails[record.id]),
                                   version.refs.local_features[row].size, found.query_points, found.reference_points)
        if distance is not None and found.inliers > best.get(record.brand, (0, None))[0]:
            best[record.brand] = (found.inliers, distance.typical)
    return {brand: distance for brand, (_, distance) in best.items()}


def test_a_sister_product_verifies_on_its_logo_but_its_colours_differ(demo_index):
    version = IndexVersion.open(demo_index)
    # the demo catalog's Tropicana bottles and Arla cartons are pairs of sisters: one logo, other colours
    for own, sister, photo in [("Tropicana-Apple-Juice", "Tropicana-Juice-Smooth", "Tropicana-Apple-Juice_027.jpg"),
                               ("Arla-Sour-Milk", "Arla-Medium-Fat-Milk", "Arla-Sour-Milk_029.jpg")]:
        colour = best_colour_per_brand(version, DEMO / "holdout" / own / photo)
        assert colour[own] + 1 < colour[sister], (photo, colour)


def test_hue_histograms_tell_a_green_pepper_from_yellow_ones_but_not_from_a_grey_photo():
    rng = np.random.default_rng(2)

    def produce(rgb):  # a photo of one colour with some sensor noise
        noisy = np.clip(np.asarray(rgb, float) + rng.normal(0, 6, (120, 160, 3)), 0, 255).astype(np.uint8)
        return colour_pixels(Image.fromarray(noisy))

    yellow, green, other_yellow = produce((230, 200, 30)), produce((60, 150, 40)), produce((240, 210, 50))
    grey = produce((128, 128, 128))
    assert hue_agreement(hue_histogram(yellow), hue_histogram(other_yellow)) > 0.8
    assert hue_agreement(hue_histogram(yellow), hue_histogram(green)) < 0.2
    assert hue_histogram(grey) is None  # nothing to compare: a grey photo never counts against a brand
    assert hue_agreement(hue_histogram(grey), hue_histogram(yellow)) == 1.0
    assert np.isclose(hue_histogram(green).sum(), 1.0)


def test_a_slight_hue_shift_keeps_most_of_the_hue_agreement_wherever_the_hue_lies():
    from skimage.color import lab2rgb

    def flat(hue_degrees):  # a flat photo of one saturated colour of this CIELAB hue
        a, b = 40 * np.cos(np.radians(hue_degrees)), 40 * np.sin(np.radians(hue_degrees))
        rgb = (lab2rgb(np.array([[[60.0, a, b]]])) * 255).round().astype(np.uint8)
        return np.broadcast_to(rgb, (60, 80, 3)).copy()

    # every 2.5 degrees around the circle, so that some pairs straddle a bin edge: 3 degrees apart agree
    for hue in np.arange(0, 360, 2.5):
        assert hue_agreement(hue_histogram(flat(hue)), hue_histogram(flat(hue + 3))) > 0.5, hue
    assert hue_agreement(hue_histogram(flat(100)), hue_histogram(flat(130))) < 0.1  # 30 degrees apart do not
