"""scripts/make_hard_slices.py: grid, collage and faded slices written from a tiny benchmark of demo catalog photos."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
import re
import shutil

import numpy as np
from PIL import Image
import pytest

from matcher.evaluation.metrics import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "demo" / "catalog"


_SPEC = importlib.util.spec_from_file_location("make_hard_slices", ROOT / "scripts" / "make_hard_slices.py")
slices = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(slices)


@pytest.fixture
def bench(tmp_path) -> Path:
    """Two brands of two references each, a copy query, and two ``none`` queries (other photos: the demo
    catalog's Oatly photos stand in for everyday ones here), in the devbench layout."""
    root = tmp_path / "bench"
    for brand in ("Arla-Sour-Milk", "Alpro-Fresh-Soy-Milk"):
        (root / "references" / brand).mkdir(parents=True)
        for photo in sorted((CATALOG / brand).glob("*.jpg"))[:2]:
            shutil.copy(photo, root / "references" / brand / photo.name)
    (root / "queries").mkdir()
    others = sorted((CATALOG / "Oatly-Natural-Oatghurt").glob("*.jpg"))[:2]
    shutil.copy(sorted((CATALOG / "Arla-Sour-Milk").glob("*.jpg"))[0], root / "queries" / "q00001.jpg")
    for i, photo in enumerate(others, 2):
        shutil.copy(photo, root / "queries" / f"q{i:05d}.jpg")
    with open(root / "ground_truth.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["query", "reference_class", "reference_image", "kind"])
        ref = sorted((CATALOG / "Arla-Sour-Milk").glob("*.jpg"))[0].name
        w.writerow(["queries/q00001.jpg", "Arla-Sour-Milk", f"references/Arla-Sour-Milk/{ref}", "copy"])
        w.writerow(["queries/q00002.jpg", "", "", "none"])
        w.writerow(["queries/q00003.jpg", "", "", "none"])
    return root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_layout_counts_and_truth(bench, tmp_path):
    out = tmp_path / "slices"
    assert slices.make_slices(bench, out, seed=3, per_slice=6, negatives=2, fillers="none-queries",
                              progress=lambda *_: None) == 24
    truth = _rows(out / "ground_truth.csv")
    assert list(truth[0]) == ["query", "reference_class", "reference_image", "kind", "slice"]
    assert sorted(p.name for p in (out / "queries").iterdir()) == [f"q{i:05d}.jpg" for i in range(1, 25)]
    assert sorted(p.relative_to(out / "references").as_posix() for p in (out / "references").rglob("*.jpg")) == \
        sorted(p.relative_to(bench / "references").as_posix() for p in (bench / "references").rglob("*.jpg"))
    for name in slices.SLICES:
        rows = [r for r in truth if r["slice"] == name]
        assert sum(r["kind"] == "copy" for r in rows) == 6 and sum(r["kind"] == "none" for r in rows) == 2
    for r in truth:
        if r["kind"] == "copy":   # a copy names a reference that is in the benchmark's index, and its class
            assert (out / r["reference_image"]).is_file()
            assert r["reference_class"] == r["reference_image"].split("/")[1]
        else:
            assert r["reference_class"] == r["reference_image"] == ""
        with Image.open(out / r["query"]) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and min(im.size) >= 240
    # the evaluator reads it: slices per query, main edits per layout
    loaded = load_benchmark(out)
    assert set(loaded.slices.values()) == set(slices.SLICES)
    edits = {q: loaded.main_edits[q] for q in loaded.queries_of("copy")}
    assert {e for q, e in edits.items() if loaded.slices[q] == "grid"} == {"grid2x2", "grid3x3", "grid4x4"}
    assert {e for q, e in edits.items() if loaded.slices[q] == "collage"} == {"collage_large", "collage_small"}
    assert {e for q, e in edits.items() if loaded.slices[q] == "faded"} == {"faded_overlay", "faded_watermark"}


def test_only_references_and_none_queries_are_used(bench, tmp_path):
    out = tmp_path / "slices"
    slices.make_slices(bench, out, seed=0, per_slice=4, negatives=2, fillers="none-queries", progress=lambda *_: None)
    allowed = {"queries/q00002.jpg", "queries/q00003.jpg"} | \
        {f"references/{p.relative_to(bench / 'references').as_posix()}" for p in (bench / "references").rglob("*.jpg")}
    used = set()
    for r in _rows(out / "manifest.csv"):
        if r["role"] == "query":
            sources = r["source"].split(";")
            used.update(sources)
            refs = [s for s in sources if s.startswith("references/")]
            assert refs == ([r["reference_image"]] if r["kind"] == "copy" else [])
    assert used <= allowed and "queries/q00001.jpg" not in used   # never the copy query


def test_same_seed_same_bytes_other_seed_other_bytes(bench, tmp_path):
    def make(name, seed):
        slices.make_slices(bench, tmp_path / name, seed=seed, per_slice=3, negatives=1, progress=lambda *_: None)
        return {p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
                for p in sorted((tmp_path / name).rglob("*")) if p.is_file()}

    first, again, other = make("a", 5), make("b", 5), make("c", 6)
    assert first == again
    assert first["ground_truth.csv"] != other["ground_truth.csv"]
    with pytest.raises(SystemExit, match="not empty"):
        slices.make_slices(bench, tmp_path / "a", seed=5, per_slice=1, negatives=0)


def _solid(colour, size=(300, 200)) -> Image.Image:
    return Image.new("RGB", size, colour)


class _BlueFillers(slices.Fillers):
    def __init__(self):
        super().__init__([("blue", _solid((0, 0, 255)))])


@pytest.mark.parametrize("n", [2, 3, 4])
def test_grid_puts_the_copy_in_the_tile_it_records(n):
    image, edit, sources = slices.grid(_solid((255, 0, 0)), np.random.default_rng(n), _BlueFillers(), n)
    slot, gutter = map(int, re.search(r"slot=(\d+),gutter=(\d+)", edit).groups())
    assert edit.startswith(f"grid{n}x{n}(") and len(sources) == n * n - 1 and image.width == image.height
    tile = (image.width - (n + 1) * gutter) // n
    pixels = np.asarray(image).astype(int)
    for k in range(n * n):
        x, y = gutter + (k % n) * (tile + gutter) + tile // 2, gutter + (k // n) * (tile + gutter) + tile // 2
        assert tuple(pixels[y, x]) == ((255, 0, 0) if k == slot else (0, 0, 255))


def test_faded_overlay_blends_at_the_recorded_opacity():
    image, edit, sources = slices.faded_overlay(_solid((255, 0, 0)), np.random.default_rng(1), _BlueFillers())
    alpha = float(re.search(r"alpha=([\d.]+)", edit).group(1))
    assert 0.3 <= alpha <= 0.7 and sources == ["blue"]
    red, _, blue = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert red == pytest.approx(255 * alpha, abs=1.5) and blue == pytest.approx(255 * (1 - alpha), abs=1.5)


def test_faded_watermark_covers_a_good_share_of_the_picture():
    image, edit, _ = slices.faded_watermark(_solid((128, 128, 128), (600, 600)), np.random.default_rng(2),
                                            _BlueFillers())
    changed = np.abs(np.asarray(image).astype(int) - 128).max(axis=2) > 10
    assert edit.startswith("faded_watermark(") and 0.12 < changed.mean() < 0.5   # about a fifth: dense


def test_collage_puts_the_copy_large_or_small():
    rng = np.random.default_rng(0)
    large, edit, sources = slices.collage(_solid((255, 0, 0)), rng, _BlueFillers(), main_large=True)
    assert edit.startswith("collage_large(") and len(sources) == int(re.search(r"small=(\d)", edit).group(1))
    small, edit, _ = slices.collage(_solid((255, 0, 0)), rng, _BlueFillers(), main_large=False)
    red = lambda im: (np.asarray(im) == (255, 0, 0)).all(axis=2).mean()  # noqa: E731
    assert edit.startswith("collage_small(") and 0 < red(small) < 0.2 < red(large)
