"""Images -> global descriptors: L2-normalised float32 vectors of shape (n, d).

The CNN's last feature map is pooled with generalised-mean (GeM) pooling, optionally at several input sizes
(the per-size descriptors are summed), then L2-normalised. These *raw* descriptors are later projected by the
index's whitening (``whiten.py``) before search.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .model import DEFAULT_BACKBONE, BackboneSpec, get_spec, load_backbone


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


def to_batch(images: Sequence[Image.Image], size: int, mean, std) -> torch.Tensor:
    """Resize RGB images to size x size and normalise -> float32 tensor (n, 3, size, size), channels_last."""
    arrays = np.stack(
        [np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.uint8) for im in images]
    )
    x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)


def gem(feature_map: torch.Tensor, p: float) -> torch.Tensor:
    """Generalised-mean pooling: (n, c, h, w) -> (n, c). p=1 is average pooling, large p tends to max."""
    return feature_map.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


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
        Torch intra-op threads; None leaves torch's default. (Torch's thread count is process-wide.)
    device : str
        ``"cpu"`` or a torch device string such as ``"cuda"``.
    batch_size : int
        Images per forward pass.
    """

    def __init__(self, config: DescriptorConfig = DescriptorConfig(), *, threads: int | None = None,
                 device: str = "cpu", batch_size: int = 32):
        self.config = config
        self.spec: BackboneSpec = get_spec(config.backbone)
        if threads:
            torch.set_num_threads(threads)
        model, self.weights_sha256 = load_backbone(self.spec)
        self.device = torch.device(device)
        self.model = model.to(self.device).to(memory_format=torch.channels_last)
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
            "runtime": "torch-fp32",
        }

    @torch.inference_mode()
    def describe(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB PIL images -> float32 (n, dim) L2-normalised raw descriptors."""
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        pre = self.spec.preprocessing
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            total = None
            for size in self.config.sizes:
                x = to_batch(chunk, size, pre.mean, pre.std).to(self.device)
                pooled = gem(self.model.forward_features(x).float(), self.config.gem_p)
                pooled = torch.nn.functional.normalize(pooled, dim=1)
                total = pooled if total is None else total + pooled
            out[start:start + len(chunk)] = total.cpu().numpy()
        return l2_normalise(out)
