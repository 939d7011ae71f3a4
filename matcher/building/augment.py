"""Synthetic counterfeit listings: seeded image edits of genuine reference photos.

Every copy edit has the signature ``edit(image, rng, backgrounds=()) -> (image, description)``;
only ``onto_background`` and ``collage`` use ``backgrounds`` (unrelated photos). ``COPY_EDITS``
maps each edit's name to its function; ``copy_edit`` chains 1-3 of them. ``listing_edit`` applies
the light edits a seller makes to their own photo. Every public function's output goes through
``finish``: RGB, long side <= 640, JPEG q90 round-trip. Same image + same Generator state ->
byte-identical result.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

from PIL import Image, ImageDraw
import numpy as np

from ..inputs import shrink
from .edits import (APP_NAMES, COMPOSITE_EDITS, MAX_SIDE, PHRASES, PRICES, _background, _colour, _fit_into, _font,
                    _pick, _text_lines, blur, color_jitter, crop, downscale, emoji, finish, grayscale, hflip,
                    hue_rotate, jpeg, logo, meme, pad, perspective, rotate, sticker, text)


# ---------------------------------------------------------------- composites
def _phone_screen(image, rng) -> Image.Image:
    """A social-app post on a phone screen: status bar, app bar, post header, photo, text, nav bar."""
    width = int(rng.integers(340, 420))
    height = round(width * rng.uniform(1.8, 2.2))
    dark = rng.random() < 0.3
    paper, ink, soft = ((18, 18, 18), (235, 235, 235), (70, 70, 70)) if dark else \
        ((255, 255, 255), (20, 20, 20), (215, 215, 220))
    screen = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(screen)
    draw.text((12, 6), f"{int(rng.integers(7, 23))}:{int(rng.integers(0, 60)):02d}", font=_font(13), fill=ink)
    draw.rectangle((width - 34, 8, width - 12, 18), outline=ink)
    draw.text((12, 32), _pick(rng, APP_NAMES), font=_font(20), fill=ink)
    draw.ellipse((width - 36, 34, width - 14, 56), outline=(60, 150, 230), width=2)
    draw.ellipse((12, 76, 44, 108), fill=_colour(rng))
    draw.text((52, 82), _pick(rng, ("John Doe", "Best Deals", "Anna K.", "Outlet Store")), font=_font(14), fill=ink)
    photo = _fit_into(image, width - 16, round(height * rng.uniform(0.35, 0.55)))
    box_h = max(photo.height, round(photo.width * 0.75))
    draw.rectangle((8, 118, width - 9, 118 + box_h), fill=(0, 0, 0) if rng.random() < 0.5 else paper)
    screen.paste(photo, ((width - photo.width) // 2, 118 + (box_h - photo.height) // 2))
    y = 130 + box_h
    draw.text((12, y), _pick(rng, PRICES), font=_font(18), fill=(220, 40, 40))
    _text_lines(draw, rng, 12, y + 32, width - 24, int(rng.integers(2, 6)), soft)
    draw.line((0, height - 48, width, height - 48), fill=soft)
    for i in range(5):
        cx = width * (i + 0.5) / 5
        draw.rounded_rectangle((cx - 9, height - 33, cx + 9, height - 15), radius=4, outline=ink, width=2)
    return screen


def _browser_window(image, rng) -> Image.Image:
    """A shop page in a browser window: tabs, address bar, menu, product photo, price, buy button."""
    width = int(rng.integers(760, 980))
    height = round(width * rng.uniform(0.6, 0.8))
    window = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(window)
    draw.rectangle((0, 0, width, 78), fill=(222, 225, 230))
    for i, colour in enumerate(((255, 95, 87), (255, 189, 46), (40, 200, 64))):
        draw.ellipse((12 + 20 * i, 12, 24 + 20 * i, 24), fill=colour)
    draw.rounded_rectangle((84, 6, 300, 32), radius=8, fill="white")
    draw.text((96, 11), _pick(rng, APP_NAMES).title() + " - item", font=_font(13), fill=(40, 40, 40))
    draw.rounded_rectangle((90, 42, width - 60, 70), radius=14, fill="white")
    url = f"https://www.{_pick(rng, APP_NAMES)}-shop.example/item/{int(rng.integers(10000, 99999))}"
    draw.text((108, 48), url, font=_font(14), fill=(60, 60, 60))
    side = round(width * rng.uniform(0.12, 0.2))
    _text_lines(draw, rng, 14, 104, side - 24, int(rng.integers(4, 12)), (225, 225, 230))
    photo = _fit_into(image, round((width - side) * rng.uniform(0.45, 0.6)), round((height - 100) * 0.9))
    window.paste(photo, (side + 20, 96))
    x = side + 40 + photo.width
    draw.text((x, 100), _pick(rng, PHRASES), font=_font(22), fill=(20, 20, 20))
    draw.text((x, 140), _pick(rng, PRICES), font=_font(28), fill=(200, 30, 30))
    draw.rounded_rectangle((x, 190, x + 150, 230), radius=8, fill=_colour(rng))
    draw.text((x + 75, 210), "Buy now", font=_font(18), fill="white", anchor="mm")
    _text_lines(draw, rng, x, 250, width - x - 20, int(rng.integers(3, 8)), (225, 225, 230))
    return window


def screenshot(image, rng, backgrounds=()):
    """The image shown inside a phone app screen or a desktop browser window."""
    if rng.random() < 0.5:
        return _phone_screen(image, rng), "screenshot(mobile)"
    return _browser_window(image, rng), "screenshot(web)"


def onto_background(image, rng, backgrounds=()):
    """Paste the image, scaled to 30-70% of the width, onto a crop of a background photo."""
    fraction = rng.uniform(0.3, 0.7)
    scene = _background(rng, backgrounds, (MAX_SIDE, round(MAX_SIDE * rng.uniform(0.6, 1.0))))
    product = _fit_into(image, round(scene.width * fraction), round(scene.height * 0.95))
    scene.paste(product, (int(rng.integers(0, scene.width - product.width + 1)),
                          int(rng.integers(0, scene.height - product.height + 1))))
    return scene, f"onto_background({fraction:.2f})"


def collage(image, rng, backgrounds=()):
    """A 1x2, 1x3 or 2x2 grid of the image and unrelated photos, on a white or black sheet."""
    rows, cols = _pick(rng, ((1, 2), (1, 3), (2, 2)))
    cell = MAX_SIDE // cols
    gap = int(rng.integers(0, 12))
    sheet = Image.new("RGB", (cols * cell, rows * cell), _pick(rng, ((255, 255, 255), (0, 0, 0))))
    slot_of_image = int(rng.integers(rows * cols))
    for slot in range(rows * cols):
        if slot == slot_of_image:
            tile = _fit_into(image, cell - gap, cell - gap)
        else:
            tile = _background(rng, backgrounds, (cell - gap, round((cell - gap) * rng.uniform(0.6, 1.0))))
        top, left = (slot // cols) * cell, (slot % cols) * cell
        sheet.paste(tile, (left + (cell - tile.width) // 2, top + (cell - tile.height) // 2))
    return sheet, f"collage({rows * cols})"


# ---------------------------------------------------------------- registries and samplers
Edit = Callable[..., tuple[Image.Image, str]]
COPY_EDITS: dict[str, Edit] = {
    "crop": crop, "downscale": downscale, "jpeg": jpeg, "color_jitter": color_jitter, "blur": blur,
    "grayscale": grayscale, "hflip": hflip, "rotate": rotate, "pad": pad, "perspective": perspective,
    "text": text, "meme": meme, "emoji": emoji, "logo": logo, "sticker": sticker,
    "screenshot": screenshot, "onto_background": onto_background, "collage": collage,
}
LISTING_EDITS: dict[str, Edit] = {
    "pad": partial(pad, max_fraction=0.15), "text": text, "jpeg": partial(jpeg, min_quality=35, max_quality=80),
    "crop": partial(crop, min_keep=0.7), "color_jitter": partial(color_jitter, strength=0.5),
    "downscale": partial(downscale, min_scale=0.5),
}


def apply_chain(image: Image.Image, names: Sequence[str], rng: np.random.Generator,
                backgrounds: Sequence[Image.Image] = (), edits: dict[str, Edit] = COPY_EDITS,
                ) -> tuple[Image.Image, str]:
    """Apply the named edits in order -> (finished image, descriptions joined by '+')."""
    image = shrink(image.convert("RGB"), MAX_SIDE)
    descriptions = []
    for name in names:
        image, description = edits[name](image, rng, backgrounds)
        image = shrink(image.convert("RGB"), 1000)
        descriptions.append(description)
    return finish(image), "+".join(descriptions)


def copy_edit(image: Image.Image, rng: np.random.Generator,
              backgrounds: Sequence[Image.Image] = ()) -> tuple[Image.Image, str]:
    """A random chain of 1-3 distinct copy edits; scene edits (screenshot, collage, ...) come last.

    Returns the finished image and a description such as ``'crop(0.10,0.05,0.90,0.95)+jpeg(q=30)'``.
    """
    count = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    names = [str(n) for n in rng.choice(list(COPY_EDITS), size=count, replace=False)]
    names.sort(key=lambda name: name in COMPOSITE_EDITS)
    return apply_chain(image, names, rng, backgrounds)


def listing_edit(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """Light edits a seller makes to their own photo (pad/text/jpeg/crop/colour/downscale).

    About 60% come back unedited (description ``''``); the rest get one or two light edits.
    """
    if rng.random() < 0.6:
        return finish(image), ""
    count = int(rng.integers(1, 3))
    names = [str(n) for n in rng.choice(list(LISTING_EDITS), size=count, replace=False)]
    return apply_chain(image, names, rng, edits=LISTING_EDITS)


def recoloured(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """The photo with every hue turned (``hue_rotate`` of ``edits.py``), then light listing edits: stands in for a
    sister product in another colour (the same carton and logo, orange juice turned apple juice)."""
    turned, turn = hue_rotate(image.convert("RGB"), rng)
    edited, description = listing_edit(turned, rng)
    return edited, "+".join(filter(None, (turn, description)))
