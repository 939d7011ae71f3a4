"""The bf16 runtime: OpenVINO computing in bfloat16, its own runtime family, picked from the index's manifest.

On a CPU without bf16 instructions OpenVINO computes in fp32 or emulates bf16, so these tests hold there too."""
from __future__ import annotations

import numpy as np
import pytest

from matcher import IndexMismatchError, Matcher
from matcher.building.build import BuildSettings, build_index
from matcher.features.embedder import Embedder
from matcher.features.runtimes import BF16_FAMILY, INT8_FAMILY, RUNTIME_FAMILY, has_bf16_cpu, make_runner, runtime_for
from matcher.index.version import IndexVersion

pytestmark = pytest.mark.slow  # runs the real CNN


def test_bf16_descriptors_agree_with_fp32(photos):
    fp32, bf16 = Embedder(runtime="onnx"), Embedder(runtime="bf16")
    assert bf16.fingerprint()["runtime"] == BF16_FAMILY and fp32.fingerprint()["runtime"] == RUNTIME_FAMILY
    cosine = (fp32.describe(photos) * bf16.describe(photos)).sum(axis=1)
    # measured on demo photos (Zen 4, AVX512_BF16): mean 0.9991, min 0.9977
    assert cosine.min() > 0.995 and cosine.mean() > 0.998
    # the region crops go through the same bf16 graph
    assert bf16.region_runner is bf16.runner and bf16.fingerprint()["region_runtime"] == BF16_FAMILY


def test_bf16_batches_of_any_size_give_the_same_vectors(photos):
    embedder = Embedder(runtime="bf16", batch_size=5)
    together = embedder.describe(photos[:7])
    alone = np.vstack([embedder.describe([p]) for p in photos[:7]])
    np.testing.assert_allclose(together, alone, atol=2e-3)


def test_auto_picks_bf16_only_where_the_cpu_computes_it():
    expected = BF16_FAMILY if has_bf16_cpu() else RUNTIME_FAMILY
    assert Embedder().fingerprint()["runtime"] == expected


def test_an_index_is_scanned_with_the_runtime_its_manifest_records(small_catalog, tmp_path):
    assert runtime_for(BF16_FAMILY) == "bf16" and runtime_for(INT8_FAMILY) == "int8"
    assert runtime_for(RUNTIME_FAMILY) == "onnx" and runtime_for(BF16_FAMILY, "cuda") == "auto"
    settings = BuildSettings(copies_per_reference=1, background_listings=10)
    bf16_index, fp32_index = tmp_path / "bf16", tmp_path / "fp32"
    build_index(small_catalog, bf16_index, embedder=Embedder(runtime="bf16"), settings=settings)
    build_index(small_catalog, fp32_index, embedder=Embedder(runtime="onnx"), settings=settings)
    assert Matcher.open(bf16_index).embedder.runner.family == BF16_FAMILY
    assert Matcher.open(fp32_index).embedder.runner.family == RUNTIME_FAMILY  # whatever this CPU can do
    photo = sorted(small_catalog.glob("*/*.jpg"))[0]
    for index in (bf16_index, fp32_index):
        result = Matcher.open(index).match(photo)
        assert result.brand == photo.parent.name and result.verdict == "copy"
    with pytest.raises(IndexMismatchError, match="runtime"):
        IndexVersion.open(bf16_index, Embedder(runtime="onnx").fingerprint())
    with pytest.raises(IndexMismatchError, match="runtime"):
        IndexVersion.open(fp32_index, Embedder(runtime="bf16").fingerprint())


def test_bf16_is_refused_on_a_gpu():
    with pytest.raises(ValueError, match="CPU only"):
        make_runner(None, None, "", runtime="bf16", device="cuda")
