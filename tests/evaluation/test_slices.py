"""Per-slice rows of `matcher eval` (ground_truth.csv with a ``slice`` column), on hand-made scores; and a
benchmark without the column (devbench's layout) printing exactly what it printed before slices existed."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from matcher.evaluation.metrics import ScoreRow, evaluate, format_report, load_benchmark

# the 7-query benchmark of test_evaluate.py (3 copies, 2 same_product, 2 none over classes A, B) with a main edit
GT = [("q00001.jpg", "A", "A/a1.jpg", "copy"), ("q00002.jpg", "B", "B/b1.jpg", "copy"),
      ("q00003.jpg", "A", "A/a2.jpg", "copy"), ("q00004.jpg", "A", "", "same_product"),
      ("q00005.jpg", "B", "", "same_product"), ("q00006.jpg", "", "", "none"), ("q00007.jpg", "", "", "none")]
EDITS = {"q00001.jpg": "blur(2.0)+jpeg(q=30)", "q00002.jpg": "", "q00003.jpg": "blur(1.0)", "q00004.jpg": "rotate(5)"}


def make_bench(root: Path, slices: dict | None = None) -> Path:
    """ground_truth.csv (with a ``slice`` column when ``slices`` maps queries to slices), manifest.csv, folders."""
    (root / "queries").mkdir(parents=True)
    for c in ("A", "B"):
        (root / "references" / c).mkdir(parents=True)
    with open(root / "ground_truth.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query", "reference_class", "reference_image", "kind"] + (["slice"] if slices else []))
        for q, c, r, k in GT:
            w.writerow([f"queries/{q}", c, f"references/{r}" if r else "", k] + ([slices.get(q, "")] if slices else []))
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "role", "kind", "reference_class", "reference_image", "source", "edits"])
        for q, chain in EDITS.items():
            w.writerow([f"queries/{q}", "query", "", "", "", "x", chain])
    return root


def rows() -> list[ScoreRow]:
    """Positives right (copies 0.9, same_product 0.8) but for q00003, whose brand B (0.7) beats its A (0.6);
    distractor q00006 at 0.85, q00007 at 0.1. Brand ranking 0.9 P P, 0.85 N, 0.8 P P, 0.7 N, 0.6 P, 0.1 N:
    precision 1 at 0.9, 2/3 at 0.85, 4/5 at 0.8, so brand_thr@P90 = 0.9."""
    return [ScoreRow("q00001.jpg", "A", "A/a1.jpg", 0.9), ScoreRow("q00002.jpg", "B", "B/b1.jpg", 0.9),
            ScoreRow("q00003.jpg", "B", "B/b1.jpg", 0.7), ScoreRow("q00003.jpg", "A", "A/a2.jpg", 0.6),
            ScoreRow("q00004.jpg", "A", "A/a3.jpg", 0.8), ScoreRow("q00005.jpg", "B", "B/b2.jpg", 0.8),
            ScoreRow("q00006.jpg", "A", "A/a1.jpg", 0.85), ScoreRow("q00007.jpg", "B", "B/b1.jpg", 0.1)]


# What format_report printed for this benchmark and rows before per-slice rows were added (recorded from the
# code as of commit d61b5de), and the keys of its metrics: a benchmark without a slice column must not change.
BEFORE = """8 score rows; queries: copy=3, same_product=2, none=2
-----------------------------
brand_uAP            0.8529
brand_R@P90          0.4000
brand_thr@P90        0.9000
copy_uAP             0.8667
copy_R@P90           0.6667
copy_thr@P90         0.9000
top1_copy            0.6667
top1_same_product    1.0000
top1_copy_ref        0.6667
fp_at_p90            0.0000
-----------------------------
copy queries by main (first) edit:
  edit         n  top1_brand  top1_ref
  blur         2      0.5000    0.5000
  unedited     1      1.0000    1.0000"""
BEFORE_KEYS = ['brand_R@P90', 'brand_thr@P90', 'brand_uAP', 'copy_R@P90', 'copy_thr@P90', 'copy_uAP', 'fp_at_p90',
               'n_queries', 'n_rows', 'per_edit', 'top1_copy', 'top1_copy_ref', 'top1_same_product', 'warnings']


def test_without_slice_column_report_is_unchanged(tmp_path):
    bench = load_benchmark(make_bench(tmp_path / "b"))
    assert bench.slices is None
    m = evaluate(bench, rows(), operating_threshold=0.5)
    assert format_report(m) == BEFORE
    assert sorted(m) == BEFORE_KEYS
    json.dumps(m)


def test_per_slice_rows_on_hand_made_scores(tmp_path):
    # slice "grid": q1 (copy, right 0.9), q3 (copy, wrong top-1, its A at 0.6), q6 (none, 0.85)
    # slice "faded": q2 (copy 0.9), q4 (same_product 0.8), q7 (none 0.1); q5 has an empty slice -> "unsliced"
    slices = {"q00001.jpg": "grid", "q00003.jpg": "grid", "q00006.jpg": "grid",
              "q00002.jpg": "faded", "q00004.jpg": "faded", "q00007.jpg": "faded"}
    bench = load_benchmark(make_bench(tmp_path / "b", slices))
    assert bench.slices["q00005.jpg"] == "unsliced" and bench.slices["q00001.jpg"] == "grid"
    m = evaluate(bench, rows(), operating_threshold=0.7)
    # the global metrics and their report lines do not depend on the slices
    assert m["brand_thr@P90"] == 0.9 and format_report(m).startswith(BEFORE)
    assert m["slice_thresholds"] == {"p90": 0.9, "operating": 0.7}
    ps = m["per_slice"]
    assert list(ps) == ["faded", "grid", "unsliced"]
    grid = ps["grid"]
    assert grid["n"] == 2 and grid["n_none"] == 1 and grid["top1_brand"] == 0.5
    assert grid["recall_at_p90"] == 0.5          # q1's A 0.9 >= 0.9; q3's A 0.6 < 0.9
    assert grid["recall_at_operating"] == 0.5    # 0.6 < 0.7 as well
    assert grid["fp_at_p90"] == 0.0 and grid["fp_at_operating"] == 1.0   # q6 at 0.85
    faded = ps["faded"]
    assert faded["n"] == 2 and faded["top1_brand"] == 1.0
    assert faded["recall_at_p90"] == 0.5 and faded["recall_at_operating"] == 1.0   # q4's 0.8
    assert faded["fp_at_p90"] == 0.0 and faded["fp_at_operating"] == 0.0
    unsliced = ps["unsliced"]
    assert unsliced["n"] == 1 and unsliced["n_none"] == 0 and math.isnan(unsliced["fp_at_p90"])
    report = format_report(m)
    assert "queries by slice (ground_truth.csv slice; brand-score thresholds: p90 = 0.9000, operating = 0.7000)" \
        in report
    line = next(x for x in report.splitlines() if x.strip().startswith("grid "))
    assert line.split() == ["grid", "2", "0.5000", "0.5000", "0.5000", "1", "0.0000", "1.0000"]


def test_per_slice_without_a_p90_point_or_operating_threshold(tmp_path):
    bench = load_benchmark(make_bench(tmp_path / "b", {q: "grid" for q, *_ in GT}))
    worse = rows() + [ScoreRow("q00007.jpg", "A", "A/a1.jpg", 0.99)]   # a distractor on top: no P90 point
    m = evaluate(bench, worse)
    assert m["brand_thr@P90"] is None and m["slice_thresholds"] == {"p90": None}
    grid = m["per_slice"]["grid"]
    assert grid["n"] == 5 and grid["n_none"] == 2
    assert grid["recall_at_p90"] == 0.0 and grid["fp_at_p90"] is None
    assert "recall_at_operating" not in grid
    assert "n/a" in format_report(m).splitlines()[-1]


@pytest.mark.parametrize("value", ["", "  "])
def test_blank_slice_cells_are_unsliced(tmp_path, value):
    bench = load_benchmark(make_bench(tmp_path / "b", {q: value for q, *_ in GT} | {"q00001.jpg": "grid"}))
    assert set(bench.slices.values()) == {"grid", "unsliced"}
