"""RGB images -> the CNN's input batch: square resize (antialiased bilinear) and per-channel normalisation."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from PIL import Image
import numpy as np

RESIZE_THREADS = 2  # images of a batch resized at once (a laptop has >= 2 cores; more would not pay off)


def resize_square(image: Image.Image, size: int) -> np.ndarray:
    """An RGB image resized to size x size pixels, bilinear with antialiasing -> (size, size, 3) uint8.

    PIL's ``Image.resize(..., BILINEAR)`` computed by torch's uint8 kernel: the same filter, values within one
    level of PIL's, for much less CPU (figures: docs/benchmarks.md).
    """
    import torch  # loaded with the model; imported here so that importing this package does not load it

    pixels = torch.from_numpy(np.array(image, np.uint8)).permute(2, 0, 1).unsqueeze(0)  # (1, 3, h, w) view
    out = torch.nn.functional.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
    return out[0].permute(1, 2, 0).numpy()


def to_batch(images: Sequence[Image.Image], size: int, mean, std) -> np.ndarray:
    """Resize RGB images to size x size (``resize_square``) and normalise -> float32 array (n, 3, size, size).
    The resizing runs on RESIZE_THREADS threads: torch releases the GIL, and the CNN is idle meanwhile."""
    if len(images) > 1:
        with ThreadPoolExecutor(RESIZE_THREADS, thread_name_prefix="matcher-resize") as pool:
            pixels = np.stack(list(pool.map(resize_square, images, [size] * len(images))))
    else:
        pixels = np.stack([resize_square(im, size) for im in images])
    batch = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)  # cast and reorder in one pass
    std = np.asarray(std, np.float32)
    batch *= (1.0 / (255.0 * std)).reshape(1, 3, 1, 1)  # (x / 255 - mean) / std, in place
    batch -= (np.asarray(mean, np.float32) / std).reshape(1, 3, 1, 1)
    return batch
