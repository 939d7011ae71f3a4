"""scripts/holdout_bench.py: benchmarks derived by holding classes out of the catalog."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("holdout_bench", ROOT / "scripts" / "holdout_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


holdout = _load_script()


def _bench(root: Path) -> Path:
    for name in ("Apple/a1.jpg", "Apple/a2.jpg", "Pear/p1.jpg"):
        (root / "references" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "references" / name).write_bytes(b"jpeg")
    (root / "queries").mkdir()
    truth = [("queries/q1.jpg", "Apple", "Apple/a1.jpg", "copy"), ("queries/q2.jpg", "Apple", "", "same_product"),
             ("queries/q3.jpg", "Pear", "", "same_product"), ("queries/q4.jpg", "", "", "none")]
    with open(root / "ground_truth.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "reference_class", "reference_image", "kind"])
        writer.writerows(truth)
    return root


def test_held_class_leaves_the_catalog_and_its_queries_become_distractors(tmp_path):
    bench = _bench(tmp_path / "bench")
    held = holdout.derive_benchmark(bench, {"Apple"}, tmp_path / "derived")
    derived = tmp_path / "derived"
    assert held == ["queries/q1.jpg", "queries/q2.jpg"]
    assert sorted(p.relative_to(derived / "references").as_posix()
                  for p in (derived / "references").rglob("*.jpg")) == ["Pear/p1.jpg"]
    rows = {r["query"]: r for r in csv.DictReader(open(derived / "ground_truth.csv", encoding="utf-8"))}
    assert [rows[q]["kind"] for q in ("queries/q1.jpg", "queries/q2.jpg", "queries/q3.jpg", "queries/q4.jpg")] == \
        ["none", "none", "same_product", "none"]
    assert rows["queries/q1.jpg"]["reference_class"] == "" and rows["queries/q1.jpg"]["reference_image"] == ""
    assert rows["queries/q3.jpg"]["reference_class"] == "Pear"
    assert (bench / "references" / "Apple" / "a1.jpg").exists()  # the source benchmark is untouched


def test_unknown_class_is_refused_by_name(tmp_path):
    bench = _bench(tmp_path / "bench")
    with pytest.raises(SystemExit, match="no class Banana"):
        holdout.derive_benchmark(bench, {"Banana"}, tmp_path / "derived")


def test_held_false_positives_counts_best_scores_at_the_threshold(tmp_path):
    derived = tmp_path / "derived"
    holdout.derive_benchmark(_bench(tmp_path / "bench"), {"Apple"}, derived)  # q1, q2: distractors now
    scores = tmp_path / "scores.csv"
    scores.write_text("listing,brand,reference,score\nq1.jpg,Pear,Pear/p1.jpg,0.05\nq1.jpg,Pear,Pear/p1.jpg,0.4\n"
                      "q2.jpg,Pear,Pear/p1.jpg,0.2\n", encoding="utf-8")
    assert holdout.held_false_positives(derived, scores, ["queries/q1.jpg", "queries/q2.jpg"], 0.3) == 0.5
    assert holdout.held_false_positives(derived, scores, ["queries/q1.jpg", "queries/q2.jpg", "queries/q9.jpg"],
                                        0.1) == \
        pytest.approx(2 / 3)  # a listing without any score row counts as not passing


def test_settings_are_parsed_into_the_build_settings_by_their_type():
    settings = holdout.build_settings(["whitening_dim=128", "colour_signs=false", "sister_weight=8"], seed=5)
    assert (settings.whitening_dim, settings.colour_signs, settings.sister_weight, settings.seed) == \
        (128, False, 8.0, 5)
    with pytest.raises(SystemExit, match="no_such_field"):
        holdout.build_settings(["no_such_field=1"], seed=5)
