"""Global descriptors: the CNN's input pixels and the agreement of the fp32 runtimes with the torch reference."""
from __future__ import annotations

from PIL import Image
import numpy as np
import pytest

from matcher.features.embedder import Embedder
from matcher.features.preprocess import resize_square


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (50, 80), (223, 225), (224, 224), (519, 399), (640, 512),
                                  (2000, 1500), (224, 1500)])
def test_resizing_is_pils_bilinear_filter(photos, size):
    # the index's preprocessing says "bilinear": PIL's antialiased filter, which resize_square computes faster
    image = photos[0].resize(size, Image.BICUBIC)
    ours = resize_square(image, 224).astype(np.int16)
    pils = np.asarray(image.resize((224, 224), Image.BILINEAR), np.int16)
    assert ours.shape == pils.shape == (224, 224, 3)
    difference = np.abs(ours - pils)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.15  # rounding only


@pytest.mark.slow  # runs the real CNN
def test_onnx_runtime_agrees_with_the_torch_reference(photos):
    onnx, torch = Embedder(runtime="onnx"), Embedder(runtime="torch")
    assert onnx.fingerprint()["runtime"] == torch.fingerprint()["runtime"]  # one family: indexes accept either
    photos = photos[:12]
    cosine = (onnx.describe(photos) * torch.describe(photos)).sum(axis=1)
    assert cosine.min() >= 0.999
