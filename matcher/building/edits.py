"""Image edits for synthetic listings: pixel edits (crop, blur, colour, geometry) and overlays (text, memes,
emoji, logos, price stickers), plus the small drawing helpers they share.

Every edit has the signature ``edit(image, rng, backgrounds=()) -> (image, description)`` and is deterministic
given the numpy Generator. ``augment.py`` adds the composite scenes (screenshots, collages, pasting onto a
background), the registries and the chain samplers.
"""
from __future__ import annotations

import io
from typing import Sequence

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps
import numpy as np

from ..inputs import shrink

MAX_SIDE = 640
PHRASES = ("BEST PRICE", "only today", "In stock", "Buy 2 get 1", "LOL", "Wholesale", "Limited offer",
           "Top quality", "FREE SHIPPING", "100% original", "Fast delivery", "Hot deal", "NEW", "Sale -50%")
PRICES = ("$4.99", "$9.90", "-50%", "2 for 1", "$1.99", "SALE", "-70%", "€3.50")
EMOJI_WORDS = ("WOW", "HOT", "OK", "NEW", "TOP", "YES", "")
APP_NAMES = ("network", "shopmart", "bazaar", "marketplace", "dealz")
# Edits that put the whole image inside a bigger scene; a chain applies them last.
COMPOSITE_EDITS = ("screenshot", "onto_background", "collage")


# ---------------------------------------------------------------- helpers
def _jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def finish(image: Image.Image) -> Image.Image:
    """Make ``image`` look like an uploaded listing: RGB, long side <= 640, JPEG q90 round-trip."""
    return _jpeg_round_trip(shrink(image.convert("RGB"), MAX_SIDE), 90)


def random_crop(image: Image.Image, rng: np.random.Generator, min_area: float = 0.2) -> Image.Image:
    """A random region covering ``min_area``..1 of ``image``, aspect ratio 3:4..4:3 where it fits."""
    width, height = image.size
    area = rng.uniform(min_area, 1.0) * width * height
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    crop_w = int(min(width, max(1, round(np.sqrt(area * aspect)))))
    crop_h = int(min(height, max(1, round(np.sqrt(area / aspect)))))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    return image.crop((left, top, left + crop_w, top + crop_h))


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def _fill(rng: np.random.Generator) -> tuple[int, int, int]:
    """A padding colour: white, black or random."""
    return _pick(rng, ((255, 255, 255), (0, 0, 0), _colour(rng)))


def _font(size: float) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, int(size)))


def _fitting_font(text: str, width: float, height: float) -> ImageFont.FreeTypeFont:
    """The largest default font in which ``text`` fits into ``width`` x ``height`` pixels."""
    length_at_100 = max(1.0, _font(100).getlength(text))
    return _font(min(height, 100 * width / length_at_100))


def _background(rng: np.random.Generator, backgrounds: Sequence[Image.Image], size: tuple[int, int]) -> Image.Image:
    """A random crop of a random background photo resized to ``size`` (plain colour if none given)."""
    if not backgrounds:
        return Image.new("RGB", size, _colour(rng))
    return random_crop(_pick(rng, backgrounds).convert("RGB"), rng, 0.3).resize(size, Image.BILINEAR)


def _fit_into(image: Image.Image, width: int, height: int) -> Image.Image:
    scale = min(width / image.width, height / image.height)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)


def _perspective_coefficients(source, target) -> list[float]:
    """Image.transform PERSPECTIVE data mapping output corners ``target`` onto input corners ``source``."""
    rows = []
    for (x, y), (u, v) in zip(target, source):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return np.linalg.solve(np.array(rows, float), np.array(source, float).reshape(8)).tolist()


# ---------------------------------------------------------------- pixel edits
def crop(image, rng, backgrounds=(), min_keep=0.45):
    """Keep a random box whose width and height are each ``min_keep``..0.97 of the image's."""
    keep_w, keep_h = rng.uniform(min_keep, 0.97, size=2)
    left, top = rng.uniform(0, 1 - keep_w), rng.uniform(0, 1 - keep_h)
    box = (left, top, left + keep_w, top + keep_h)
    w, h = image.size
    pixels = (int(box[0] * w), int(box[1] * h), max(int(box[0] * w) + 1, int(box[2] * w)),
              max(int(box[1] * h) + 1, int(box[3] * h)))
    return image.crop(pixels), "crop({:.2f},{:.2f},{:.2f},{:.2f})".format(*box)


def downscale(image, rng, backgrounds=(), min_scale=0.3):
    """Shrink by a factor ``min_scale``..0.8."""
    scale = rng.uniform(min_scale, 0.8)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.BILINEAR), f"downscale({scale:.2f})"


def jpeg(image, rng, backgrounds=(), min_quality=10, max_quality=60):
    """Re-encode as JPEG at a random quality."""
    quality = int(rng.integers(min_quality, max_quality + 1))
    return _jpeg_round_trip(image, quality), f"jpeg(q={quality})"


def color_jitter(image, rng, backgrounds=(), strength=1.0):
    """Random brightness (±30%), contrast (±40%) and saturation (-60%..+80%), scaled by ``strength``."""
    brightness = 1 + strength * rng.uniform(-0.3, 0.3)
    contrast = 1 + strength * rng.uniform(-0.4, 0.4)
    saturation = 1 + strength * rng.uniform(-0.6, 0.8)
    image = ImageEnhance.Brightness(image).enhance(brightness)
    image = ImageEnhance.Contrast(image).enhance(contrast)
    image = ImageEnhance.Color(image).enhance(saturation)
    return image, f"color_jitter({brightness:.2f},{contrast:.2f},{saturation:.2f})"


def hue_rotate(image, rng, backgrounds=()):
    """Turn every hue by 60-300 degrees: the same package in another colour, as a sister product's would be.
    Not a copy edit: it makes look-alike negatives for calibration (``make_listings`` of ``calibration.py``)."""
    turn = int(rng.integers(43, 214))  # PIL's hue runs 0-255 for 0-360 degrees
    hue, saturation, value = image.convert("HSV").split()
    hue = hue.point(lambda h: (h + turn) % 256)
    return Image.merge("HSV", (hue, saturation, value)).convert("RGB"), f"hue_rotate({turn * 360 / 256:.0f})"


def blur(image, rng, backgrounds=()):
    """Gaussian blur, radius 1-3 px."""
    radius = rng.uniform(1.0, 3.0)
    return image.filter(ImageFilter.GaussianBlur(radius)), f"blur({radius:.1f})"


def grayscale(image, rng, backgrounds=()):
    """Drop the colour."""
    return image.convert("L").convert("RGB"), "grayscale"


def hflip(image, rng, backgrounds=()):
    """Mirror left-right."""
    return ImageOps.mirror(image), "hflip"


def rotate(image, rng, backgrounds=()):
    """Rotate by 3-20 degrees either way; the canvas grows and the corners are filled."""
    angle = rng.uniform(3, 20) * _pick(rng, (-1, 1))
    return image.rotate(angle, Image.BILINEAR, expand=True, fillcolor=_fill(rng)), f"rotate({angle:.1f})"


def pad(image, rng, backgrounds=(), max_fraction=0.3):
    """Add a border: the canvas grows by up to ``max_fraction`` in each direction, image placed at random."""
    grow_x, grow_y = rng.uniform(0.03, max_fraction, size=2)
    canvas = Image.new("RGB", (round(image.width * (1 + grow_x)), round(image.height * (1 + grow_y))), _fill(rng))
    canvas.paste(image, (int(rng.integers(0, canvas.width - image.width + 1)),
                         int(rng.integers(0, canvas.height - image.height + 1))))
    return canvas, f"pad({grow_x:.2f},{grow_y:.2f})"


def perspective(image, rng, backgrounds=()):
    """Tilt as if photographed at an angle: each corner moves inwards by up to 5-30% of the side."""
    strength = rng.uniform(0.05, 0.3)
    w, h = image.size
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    shifts = rng.uniform(0, strength, size=(4, 2)) * (w, h)
    inward = np.array([(1, 1), (-1, 1), (-1, -1), (1, -1)])
    target = np.array(corners, float) + shifts * inward
    data = _perspective_coefficients(corners, target.tolist())
    warped = image.transform(image.size, Image.PERSPECTIVE, data, Image.BILINEAR, fillcolor=_fill(rng))
    return warped, f"perspective({round(strength * 100)})"


# ---------------------------------------------------------------- overlays
def text(image, rng, backgrounds=()):
    """A sales phrase written somewhere on the image, optionally outlined or on a box."""
    phrase = _pick(rng, PHRASES)
    font = _fitting_font(phrase, image.width * rng.uniform(0.3, 0.9), image.height * rng.uniform(0.06, 0.2))
    left, top, right, bottom = font.getbbox(phrase)
    x = int(rng.integers(0, max(1, image.width - right + 1)))
    y = int(rng.integers(-top, max(1 - top, image.height - bottom + 1)))
    image = image.copy()
    draw = ImageDraw.Draw(image)
    style = int(rng.integers(3))
    if style == 1:
        draw.rectangle((x + left - 4, y + top - 4, x + right + 4, y + bottom + 4), fill=_colour(rng))
    stroke = max(1, font.size // 12) if style == 2 else 0
    draw.text((x, y), phrase, font=font, fill=_colour(rng), stroke_width=stroke, stroke_fill=(0, 0, 0))
    return image, f"text('{phrase}')"


def meme(image, rng, backgrounds=()):
    """A big caption: black on a white band above/below, or white outlined text over the image."""
    phrase = _pick(rng, PHRASES)
    band = round(image.height * rng.uniform(0.15, 0.35))
    font = _fitting_font(phrase, image.width * 0.92, band * 0.7)
    left, top, right, bottom = font.getbbox(phrase)
    x = (image.width - right - left) // 2
    if rng.random() < 0.6:
        canvas = Image.new("RGB", (image.width, image.height + band), "white")
        at_top = rng.random() < 0.7
        canvas.paste(image, (0, band if at_top else 0))
        y = (band - bottom - top) // 2 + (0 if at_top else image.height)
        ImageDraw.Draw(canvas).text((x, y), phrase, font=font, fill=(0, 0, 0))
        return canvas, f"meme('{phrase}')"
    image = image.copy()
    y = int(rng.choice([band * 0.1, image.height - band * 0.9]))
    ImageDraw.Draw(image).text((x, y), phrase, font=font, fill="white",
                               stroke_width=max(1, font.size // 15), stroke_fill="black")
    return image, f"meme('{phrase}')"


def _text_lines(draw, rng, x: float, y: float, width: float, rows: int, fill) -> None:
    """``rows`` grey bars of random length, standing in for lines of small text below (x, y)."""
    for row in range(rows):
        right = x + width * rng.uniform(0.4, 1.0)
        draw.rounded_rectangle((x, y + 20 * row, right, y + 20 * row + 10), radius=4, fill=fill)


def _star(cx: float, cy: float, radius: float, points: int, inner: float) -> list[tuple[float, float]]:
    angles = np.pi * np.arange(2 * points) / points - np.pi / 2
    radii = np.where(np.arange(2 * points) % 2 == 0, radius, radius * inner)
    return list(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles)))


def _paste_tile(image, rng, tile: Image.Image) -> Image.Image:
    """Paste an RGBA tile at a random place (partly off the image is allowed) with random opacity."""
    opacity = rng.uniform(0.7, 1.0)
    alpha = tile.getchannel("A").point(lambda a: int(a * opacity))
    x = int(rng.integers(-tile.width // 4, max(1, image.width - tile.width * 3 // 4)))
    y = int(rng.integers(-tile.height // 4, max(1, image.height - tile.height * 3 // 4)))
    image = image.copy()
    image.paste(tile.convert("RGB"), (x, y), alpha)
    return image


def emoji(image, rng, backgrounds=()):
    """A drawn emoji-like sticker (smiley, star, heart or badge), 15-35% of the short side."""
    fraction = rng.uniform(0.15, 0.35)
    s = max(8, round(min(image.size) * fraction))
    tile = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    kind = _pick(rng, ("smiley", "star", "heart", "badge"))
    colour, word = _colour(rng), _pick(rng, EMOJI_WORDS)
    if kind == "smiley":
        draw.ellipse((0, 0, s - 1, s - 1), fill=(255, 204, 40), outline=(120, 80, 0), width=max(1, s // 30))
        for ex in (0.33, 0.67):
            draw.ellipse((s * (ex - 0.06), s * 0.3, s * (ex + 0.06), s * 0.45), fill=(60, 40, 0))
        draw.arc((s * 0.25, s * 0.35, s * 0.75, s * 0.8), 20, 160, fill=(60, 40, 0), width=max(1, s // 20))
        word = ""
    elif kind == "star":
        draw.polygon(_star(s / 2, s / 2, s / 2, 5, 0.45), fill=colour)
    elif kind == "heart":
        draw.ellipse((0, 0, s * 0.55, s * 0.55), fill=(230, 30, 60))
        draw.ellipse((s * 0.45, 0, s - 1, s * 0.55), fill=(230, 30, 60))
        draw.polygon([(s * 0.03, s * 0.38), (s * 0.97, s * 0.38), (s / 2, s - 1)], fill=(230, 30, 60))
    else:
        draw.ellipse((0, 0, s - 1, s - 1), fill=colour, outline="white", width=max(1, s // 15))
    if word:
        font = _fitting_font(word, s * 0.5, s * 0.3)
        draw.text((s / 2, s / 2), word, font=font, fill="white", anchor="mm", stroke_width=1, stroke_fill="black")
    return _paste_tile(image, rng, tile), f"emoji({kind},{fraction:.2f})"


def logo(image, rng, backgrounds=()):
    """A made-up brand logo: 1-3 letters on a coloured rounded square or circle, 15-40% of the short side."""
    fraction = rng.uniform(0.15, 0.4)
    s = max(8, round(min(image.size) * fraction))
    letters = "".join(chr(int(c)) for c in rng.integers(65, 91, size=int(rng.integers(1, 4))))
    tile = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    back = _colour(rng)
    ink = (0, 0, 0) if sum(back) > 380 else (255, 255, 255)
    if rng.random() < 0.5:
        draw.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 6, fill=back)
        draw.rectangle((s * 0.2, s * 0.78, s * 0.55, s * 0.84), fill=ink)
    else:
        draw.ellipse((0, 0, s - 1, s - 1), fill=back)
    draw.text((s / 2, s * 0.45), letters, font=_fitting_font(letters, s * 0.7, s * 0.5), fill=ink, anchor="mm")
    return _paste_tile(image, rng, tile), f"logo({letters},{fraction:.2f})"


def sticker(image, rng, backgrounds=()):
    """A price sticker: a red, yellow or orange starburst with a price or discount."""
    price = _pick(rng, PRICES)
    s = max(8, round(min(image.size) * rng.uniform(0.2, 0.4)))
    tile = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    back = _pick(rng, ((220, 20, 30), (255, 210, 0), (255, 120, 0)))
    draw.polygon(_star(s / 2, s / 2, s / 2, int(rng.integers(10, 17)), 0.8), fill=back)
    ink = (0, 0, 0) if back[1] > 200 else (255, 255, 255)
    draw.text((s / 2, s / 2), price, font=_fitting_font(price, s * 0.7, s * 0.35), fill=ink, anchor="mm")
    return _paste_tile(image, rng, tile), f"sticker('{price}')"
