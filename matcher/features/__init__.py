"""Features: what the engine sees in a photo.

Global descriptors (``Embedder``: a pretrained CNN on a fast runtime, GeM-pooled), local SIFT features and their
pairwise geometric verification, and colour statistics. torch, timm and OpenVINO are imported when an
``Embedder`` is made, not when this package is imported.
"""
from .backbone import get_spec, load_backbone
from .embedder import DescriptorConfig, Embedder
from .pooling import gem, l2_normalise
from .preprocess import to_batch
from .sift import (LocalFeatures, Verification, extract_local_features, mirror_features, pack_features, unpack_features,
                   verify_against, verify_pair)

__all__ = ["Embedder", "DescriptorConfig", "LocalFeatures", "Verification", "extract_local_features",
           "mirror_features", "verify_against", "verify_pair", "pack_features", "unpack_features", "get_spec",
           "load_backbone", "to_batch", "gem", "l2_normalise"]
