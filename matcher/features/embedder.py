"""Images -> raw global descriptors: L2-normalised float32 vectors of shape (n, d).

The CNN's last feature map (``runtimes.py``) is pooled with GeM (``pooling.py``), optionally at several input
sizes (the per-size descriptors are summed), then L2-normalised. These *raw* descriptors are projected by the
index's whitening before search. The same pass also yields descriptors of feature-map windows, a free coarse look
at image regions for the cascade's gate.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from PIL import Image
import numpy as np

from .backbone import DEFAULT_BACKBONE, BackboneSpec, get_spec, load_backbone
from .pooling import WINDOWS, gem, l2_normalise, powered, window_descriptors
from .preprocess import to_batch
from .runtimes import INT8_FAMILY, FeatureRunner, make_runner


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
        (ONNX Runtime on a statically quantised graph, faster on the CPU). bf16 and int8 vectors are not
        fp32's, so an index records which family made it (``runtimes.py``).
    region_runtime : str
        What embeds the cascade's region crops (``describe_regions``): ``"auto"`` (the int8 graph when the CNN
        runs fp32 on ONNX Runtime, else the same runner), ``"int8"`` or ``"same"``. Region crops only bring up
        candidates and a similarity feature of the scorer, which the index fits on crops embedded this way (its
        manifest records the family); int8 crops make scans of marketplace-like traffic faster at a cost in
        accuracy within the spread between build seeds (figures: docs/benchmarks.md).
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
