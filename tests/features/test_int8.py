"""The int8 runtime: a statically quantised CNN, its own runtime family, picked from the index's manifest."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from matcher import IndexMismatchError, Matcher
from matcher.building.build import BuildSettings, build_index
from matcher.building.lifecycle import add_to_index
from matcher.features.embedder import Embedder
from matcher.features.runtimes import INT8_FAMILY
from matcher.index.version import IndexVersion
from tests.conftest import DEMO

pytestmark = pytest.mark.slow  # runs the real CNN


def test_int8_descriptors_stay_close_to_fp32(photos):
    fp32, int8 = Embedder(runtime="onnx"), Embedder(runtime="int8")
    assert int8.fingerprint()["runtime"] == INT8_FAMILY != fp32.fingerprint()["runtime"]
    cosine = (fp32.describe(photos) * int8.describe(photos)).sum(axis=1)
    # the recipe's 7-bit weights keep this on CPUs with and without VNNI (full-range weights fell to a mean
    # of 0.90 on an AVX2 CPU, from saturation); measured mean 0.97, min 0.945 on AVX2
    assert cosine.min() > 0.92 and cosine.mean() > 0.96


def test_an_int8_index_is_scanned_with_int8_and_refuses_fp32(small_catalog, tmp_path):
    out = tmp_path / "index"
    build_index(small_catalog, out, embedder=Embedder(runtime="int8"),
                settings=BuildSettings(copies_per_reference=1, background_listings=10))
    matcher = Matcher.open(out)
    assert matcher.embedder.fingerprint()["runtime"] == INT8_FAMILY
    photo = sorted(small_catalog.glob("*/*.jpg"))[0]
    result = matcher.match(photo)
    assert result.brand == photo.parent.name and result.verdict == "copy"
    with pytest.raises(IndexMismatchError, match="runtime"):
        IndexVersion.open(out, Embedder(runtime="onnx").fingerprint())
    assert np.isfinite(result.score)


def test_region_crops_run_int8_with_the_fp32_cnn_and_as_the_index_recorded(demo_index, demo_matcher, small_catalog,
                                                                             tmp_path):
    fp32 = Embedder(runtime="onnx")
    assert fp32.fingerprint()["region_runtime"] == INT8_FAMILY  # fp32 CNN on ONNX Runtime, int8 region crops
    assert fp32.region_runner is not fp32.runner
    # the index records its crops' runtime, and a matcher opened on it embeds crops the same way
    recorded = IndexVersion.open(demo_index).manifest["fingerprint"]["region_runtime"]
    assert recorded == Embedder().fingerprint()["region_runtime"] == demo_matcher.embedder.region_runner.family
    # an index built with fp32 crops (or before they existed) keeps them fp32 when scanned
    out = tmp_path / "index"
    build_index(small_catalog, out, embedder=Embedder(runtime="onnx", region_runtime="same"),
                settings=BuildSettings(copies_per_reference=1, background_listings=10))
    matcher = Matcher.open(out)
    assert matcher.embedder.region_runner is matcher.embedder.runner
    assert IndexVersion.open(out).manifest["fingerprint"]["region_runtime"] == "fp32"
    # adding a brand keeps the scorer, so the crops stay as it saw them, whatever embedder embeds the new photos
    extra = tmp_path / "extra" / "New-Brand"
    extra.mkdir(parents=True)
    shutil.copy(sorted((DEMO / "catalog").glob("*/*.jpg"))[-1], extra / "photo.jpg")
    add_to_index(out, extra.parent, embedder=fp32)
    assert IndexVersion.open(out).manifest["fingerprint"]["region_runtime"] == "fp32"
    assert Matcher.open(out).embedder.region_runner.family == "fp32"


def test_int8_region_crops_describe_like_fp32(photos):
    embedder = Embedder(runtime="onnx")
    crops = [p.crop((0, 0, p.width // 2, p.height // 2)) for p in photos[:8]]
    cosine = (embedder.describe(crops) * embedder.describe_regions(crops)).sum(axis=1)
    assert cosine.min() > 0.92 and cosine.mean() > 0.96
    with pytest.raises(ValueError, match="region runtime"):
        Embedder(region_runtime="fp16")
