"""Images -> global descriptors: L2-normalised float32 vectors of shape (n, d).

The CNN's last feature map is pooled with generalised-mean (GeM) pooling, optionally at several input sizes
(the per-size descriptors are summed), then L2-normalised. These *raw* descriptors are later projected by the
index's whitening (``whiten.py``) before search.

The CNN runs on one of two fp32 runtimes that give the same numbers (cosine >= 0.999): ONNX Runtime on the CPU
(~3x faster than eager PyTorch here; see ``runtime.py``), or PyTorch (``device="cuda"`` or ``runtime="torch"``);
on a CPU with bf16 instructions the default is OpenVINO computing in bfloat16 (~1.6x ONNX Runtime's fp32, its own
family). The cascade's region crops (``describe_regions``) go through the int8 graph when the CNN runs fp32 on
ONNX Runtime.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .model import DEFAULT_BACKBONE, BackboneSpec, get_spec, load_backbone
from .runtime import INT8_FAMILY, FeatureRunner, make_runner


RESIZE_THREADS = 2  # images of a batch resized at once (a laptop has >= 2 cores; more would not pay off)


@dataclass(frozen=True)
class DescriptorConfig:
    """What a global descriptor is: backbone, input sizes (pixels, square) and GeM exponent."""

    backbone: str = DEFAULT_BACKBONE
    sizes: tuple[int, ...] = (224,)
    gem_p: float = 3.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DescriptorConfig":
        return cls(backbone=d["backbone"], sizes=tuple(d["sizes"]), gem_p=float(d["gem_p"]))


def resize_square(image: Image.Image, size: int) -> np.ndarray:
    """An RGB image resized to size x size pixels, bilinear with antialiasing -> (size, size, 3) uint8.

    PIL's ``Image.resize(..., BILINEAR)`` computed by torch's uint8 kernel: the same filter, values within one
    level of PIL's (0.1% of them differ, by 1), ~3x faster (0.45 against 1.5 ms of CPU for a 520 x 400 listing).
    """
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


def powered(feature_map: np.ndarray, p: float) -> np.ndarray:
    """max(x, 1e-6) ** p elementwise, float32 (n, c, h, w); integer p by multiplication (several times faster
    than a float power)."""
    clipped = np.maximum(feature_map, np.float32(1e-6))
    if float(p).is_integer() and 1 <= p <= 4:
        out = clipped.copy()
        for _ in range(int(p) - 1):
            out *= clipped
        return out
    return np.power(clipped, np.float32(p))


def _root(means: np.ndarray, p: float) -> np.ndarray:
    return np.power(means, 1.0 / p).astype(np.float32)


def gem(feature_map: np.ndarray, p: float, *, powered_map: np.ndarray | None = None) -> np.ndarray:
    """Generalised-mean pooling: float32 (n, c, h, w) -> (n, c). p=1 is average pooling, large p tends to max.
    ``powered_map``: ``powered(feature_map, p)`` when the caller has it already."""
    raised = powered(feature_map, p) if powered_map is None else powered_map
    return _root(raised.mean(axis=(2, 3)), p)


WINDOWS = 5  # feature-map windows per image: 4 overlapping quadrants + the centre


def window_descriptors(feature_map: np.ndarray, p: float, *, powered_map: np.ndarray | None = None) -> np.ndarray:
    """GeM of WINDOWS parts of a feature map (n, c, h, w): the four corner windows (~55% of each side) and the
    centre (60%) -> L2-normalised float32 (n, WINDOWS, c). ``powered_map``: ``powered(feature_map, p)`` when
    the caller has it already."""
    n, c, h, w = feature_map.shape
    kh, kw = max(1, round(0.55 * h)), max(1, round(0.55 * w))
    boxes = [(0, kh, 0, kw), (0, kh, w - kw, w), (h - kh, h, 0, kw), (h - kh, h, w - kw, w),
             (h // 5, h - h // 5, w // 5, w - w // 5)]
    averaging = np.zeros((WINDOWS, h, w), np.float32)  # each window's mean as one matrix product
    for k, (top, bottom, left, right) in enumerate(boxes):
        averaging[k, top:bottom, left:right] = 1.0 / ((bottom - top) * (right - left))
    raised = powered(feature_map, p) if powered_map is None else powered_map
    means = raised.reshape(n * c, h * w) @ averaging.reshape(WINDOWS, h * w).T  # (n * c, WINDOWS)
    pooled = _root(np.maximum(means, 0.0), p).reshape(n, c, WINDOWS).transpose(0, 2, 1)
    return l2_normalise(pooled.reshape(n * WINDOWS, c)).reshape(n, WINDOWS, c)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); float32 (n, d)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class Embedder:
    """Turns RGB PIL images into raw global descriptors.

    Parameters
    ----------
    config : DescriptorConfig
    threads : int or None
        CPU threads for the CNN; None leaves the runtime's default.
    device : str
        ``"cpu"`` or a torch device string such as ``"cuda"`` (which implies the torch runtime).
    batch_size : int
        Images per forward pass.
    runtime : str
        ``"auto"`` (on the CPU: OpenVINO in bf16 where the CPU has bf16 instructions, else ONNX Runtime when
        installed; torch otherwise or on a GPU), ``"onnx"``, ``"torch"``, ``"bf16"`` (OpenVINO) or ``"int8"``
        (ONNX Runtime on a statically quantised graph, ~2x faster on the CPU). bf16 and int8 vectors are not
        fp32's, so an index records which family made it (``runtime.py``).
    region_runtime : str
        What embeds the cascade's region crops (``describe_regions``): ``"auto"`` (the int8 graph when the CNN
        runs fp32 on ONNX Runtime, else the same runner), ``"int8"`` or ``"same"``. Region crops only bring up
        candidates and a similarity feature of the scorer, which the index fits on crops embedded this way (its
        manifest records the family); int8 crops made scans of marketplace-like traffic ~12% faster and moved
        devbench's metrics by <= 0.004 (mean of three build seeds).
    """

    def __init__(self, config: DescriptorConfig = DescriptorConfig(), *, threads: int | None = None,
                 device: str = "cpu", batch_size: int = 32, runtime: str = "auto", region_runtime: str = "auto"):
        if region_runtime not in ("auto", "int8", "same"):
            raise ValueError(f"unknown region runtime {region_runtime!r}; use auto, int8 or same")
        self.config = config
        self.spec: BackboneSpec = get_spec(config.backbone)
        model, self.weights_sha256 = load_backbone(self.spec)
        self.runner: FeatureRunner = make_runner(model, self.spec, self.weights_sha256, runtime=runtime,
                                                 device=device, threads=threads)
        int8_crops = region_runtime == "int8" or (region_runtime == "auto" and self.runner.name == "onnxruntime")
        self.region_runner = (make_runner(model, self.spec, self.weights_sha256, runtime="int8", threads=threads)
                              if int8_crops and self.runner.family != INT8_FAMILY else self.runner)
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        """Length of a raw descriptor."""
        return self.spec.feature_dim

    def fingerprint(self) -> dict:
        """What an index records to refuse vectors made another way."""
        return {
            "descriptor": self.config.as_dict(),
            "backbone_timm": self.spec.timm_name,
            "weights_sha256": self.weights_sha256,
            "preprocessing": self.spec.preprocessing.as_dict(),
            "runtime": self.runner.family,
            "region_runtime": self.region_runner.family,
        }

    def describe(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB PIL images -> float32 (n, dim) L2-normalised raw descriptors."""
        return self.describe_with_windows(images, windows=False)[0]

    def describe_regions(self, crops: Sequence[Image.Image]) -> np.ndarray:
        """Like ``describe``, for the cascade's region crops: on ``region_runner``."""
        return self.describe_with_windows(crops, windows=False, runner=self.region_runner)[0]

    def describe_with_windows(self, images: Sequence[Image.Image], *, windows: bool = True,
                              runner: FeatureRunner | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw descriptors (n, dim) and, from the same CNN pass, descriptors of WINDOWS feature-map windows
        (n, WINDOWS, dim), L2-normalised (the windows come from the first input size; (n, 0, dim) if not asked).

        A window descriptor costs no CNN work: it pools a part of the feature map, a coarse look at an image
        region (used by the cascade's gate to notice a product shown small inside a larger picture).
        """
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        parts = np.zeros((len(images), WINDOWS if windows else 0, self.dim), dtype=np.float32)
        pre = self.spec.preprocessing
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            total = np.zeros((len(chunk), self.dim), np.float32)
            for k, size in enumerate(self.config.sizes):
                feature_map = (runner or self.runner).run(to_batch(chunk, size, pre.mean, pre.std))
                raised = powered(feature_map, self.config.gem_p)
                total += l2_normalise(gem(feature_map, self.config.gem_p, powered_map=raised))
                if windows and k == 0:
                    parts[start:start + len(chunk)] = window_descriptors(feature_map, self.config.gem_p,
                                                                         powered_map=raised)
            out[start:start + len(chunk)] = total
        return l2_normalise(out), parts
