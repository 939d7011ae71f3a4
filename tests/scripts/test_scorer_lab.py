"""scripts/scorer_lab.py: scorers refitted on cached evidence score a benchmark as the engine does."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
import shutil

import pytest

from matcher import Matcher, build_index, scan
from matcher.building.build import BuildSettings
from matcher.evaluation.metrics import HEADLINE_KEYS, evaluate, load_benchmark, score_rows_from_results
from matcher.scan.writers import read_results

pytestmark = pytest.mark.slow  # builds an index with the real CNN

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
BRANDS = ("Alpro-Fresh-Soy-Milk", "Arla-Medium-Fat-Milk")


def _load_script():
    spec = importlib.util.spec_from_file_location("scorer_lab", ROOT / "scripts" / "scorer_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(root: Path) -> Path:
    """Two demo brands as references; the demo listings of those brands and some of none as queries."""
    for brand in BRANDS:
        shutil.copytree(DEMO / "catalog" / brand, root / "references" / brand)
    (root / "queries").mkdir()
    with open(DEMO / "listings_truth.csv", newline="", encoding="utf-8") as f:
        truth = [r for r in csv.DictReader(f) if r["brand"] in BRANDS or r["kind"] == "none"][:10]
    with open(root / "ground_truth.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "reference_class", "reference_image", "kind"])
        for row in truth:
            name = Path(row["listing"]).name
            shutil.copy(DEMO / row["listing"], root / "queries" / name)
            writer.writerow([f"queries/{name}", row["brand"], row["reference"], row["kind"]])
    return root


def test_the_index_settings_reproduce_the_scan(tmp_path):
    lab = _load_script()
    bench, work = _bench(tmp_path / "bench"), tmp_path / "work"
    settings = BuildSettings(copies_per_reference=1, background_listings=20)
    build_index(bench / "references", work / "index", settings=settings)
    scan(bench / "queries", Matcher.open(work / "index"), work / "results.jsonl", top_k=10)
    expected = evaluate(load_benchmark(bench), score_rows_from_results(read_results(work / "results.jsonl")))

    matcher = Matcher.open(work / "index")
    data = lab.collect(work, matcher)
    assert (work / lab.CACHE).exists() and len(data["evidence"]) == len(data["queries"]) > 0
    same = lab.rescore(matcher, data, sister_weight=settings.sister_weight, l2=1.0, colour_signs=True)
    assert {k: same[k] for k in HEADLINE_KEYS} == pytest.approx({k: expected[k] for k in HEADLINE_KEYS})
    assert lab.collect(work, matcher)["queries"] == data["queries"]  # read back from the cache
