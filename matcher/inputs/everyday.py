"""Everyday photos that show no catalog product, bundled with scikit-image (no network).

A build pastes listings onto them and uses them as negatives (``building``); the int8 graph of the CNN is
calibrated on crops of them (``features.runtimes``).
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from .images import shrink

# Photos bundled with scikit-image whose licence skimage.data states (public domain / CC0 / no known restrictions).
SKIMAGE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "hubble_deep_field.jpg", "ihc.png",
                  "retina.jpg", "camera.png", "horse.png", "brick.png", "grass.png", "gravel.png", "coins.png",
                  "text.png", "clock_motion.png")
EVERYDAY_SIDE = 640  # long side of the photos, pixels (larger ones are shrunk)


def everyday_photos() -> list[Image.Image]:
    """The SKIMAGE_PHOTOS as RGB images with a long side of at most EVERYDAY_SIDE; files missing from the
    installed scikit-image are skipped."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    photos = []
    for name in SKIMAGE_PHOTOS:
        if (folder / name).is_file():
            with Image.open(folder / name) as photo:
                photos.append(shrink(photo.convert("RGB"), EVERYDAY_SIDE))
    return photos
