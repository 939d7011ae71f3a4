"""Shared fixtures: the bundled demo catalog built once per test session with the real weights."""
from __future__ import annotations

import csv
from pathlib import Path
import shutil

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo"


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory) -> Path:
    """An index of demo/catalog built with default settings (real EfficientNet-Lite0 weights)."""
    from matcher import build_index

    out = tmp_path_factory.mktemp("indexes") / "demo"
    build_index(DEMO / "catalog", out)
    return out


@pytest.fixture(scope="session")
def demo_matcher(demo_index):
    from matcher import Matcher

    return Matcher.open(demo_index)


@pytest.fixture(scope="session")
def demo_truth() -> dict[str, dict]:
    """listing path (as in demo/listings.csv) -> {kind, brand, reference}."""
    with open(DEMO / "listings_truth.csv", newline="", encoding="utf-8") as f:
        return {row["listing"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="session")
def photos() -> list:
    """The first 24 demo catalog photos, decoded to RGB PIL images (for comparing descriptors)."""
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in sorted((DEMO / "catalog").glob("*/*.jpg"))[:24]]


@pytest.fixture
def small_catalog(tmp_path) -> Path:
    """Two brands, three photos each, copied from the demo catalog."""
    root = tmp_path / "catalog"
    for brand in sorted(p for p in (DEMO / "catalog").iterdir() if p.is_dir())[:2]:
        (root / brand.name).mkdir(parents=True)
        for photo in sorted(brand.glob("*.jpg"))[:3]:
            shutil.copy(photo, root / brand.name / photo.name)
    return root


# Tests that run the real CNN (EfficientNet-Lite0 weights, torch/ONNX Runtime/OpenVINO) are marked ``slow``:
# those asking for these fixtures automatically, the others with ``pytest.mark.slow``. ``make test-fast`` runs the
# rest (``-m "not slow"``) in under a minute.
CNN_FIXTURES = {"demo_index", "demo_matcher", "embedder", "base_index", "index"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if CNN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
