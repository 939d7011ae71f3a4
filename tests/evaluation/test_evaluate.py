"""Tests of matcher.evaluate on tiny synthetic benchmarks with hand-computed metric values."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
import subprocess
import sys

import pytest

from matcher.evaluation.metrics import (EvaluationError, ScoreRow, evaluate, evaluate_scores_file, false_positives,
                                        format_report, load_benchmark, ranked_metrics, read_scores_csv,
                                        score_rows_from_results, split_edit_chain, write_scores_csv)

ROOT = Path(__file__).resolve().parents[2]

# The small benchmark: 3 copy, 2 same_product, 2 none queries over classes A and B.
#   brand positives = 5 (copies + same_product), copy positives = 3.
GT = [
    ("q00001.jpg", "A", "A/a1.jpg", "copy"),
    ("q00002.jpg", "B", "B/b1.jpg", "copy"),
    ("q00003.jpg", "A", "A/a2.jpg", "copy"),
    ("q00004.jpg", "A", "", "same_product"),
    ("q00005.jpg", "B", "", "same_product"),
    ("q00006.jpg", "", "", "none"),
    ("q00007.jpg", "", "", "none"),
]
EDITS = {   # main edits: q1, q3 -> blur; q2 -> unedited; q4..q7 are not copies
    "q00001.jpg": "blur(2.0)+jpeg(q=30)",
    "q00002.jpg": "",
    "q00003.jpg": "blur(1.0)",
    "q00004.jpg": "rotate(5)",
}


def make_bench(root: Path, gt=GT, edits=EDITS, classes=("A", "B")) -> Path:
    """Write ground_truth.csv, manifest.csv (unless edits is None) and empty folders under root."""
    (root / "queries").mkdir(parents=True)
    for c in classes:
        (root / "references" / c).mkdir(parents=True)
    with open(root / "ground_truth.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query", "reference_class", "reference_image", "kind"])
        for q, c, r, k in gt:
            w.writerow([f"queries/{q}", c, f"references/{r}" if r else "", k])
    if edits is not None:
        with open(root / "manifest.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "role", "kind", "reference_class", "reference_image", "source", "edits"])
            w.writerow(["references/A/a1.jpg", "reference", "", "A", "", "x", ""])
            for q, chain in edits.items():
                w.writerow([f"queries/{q}", "query", "", "", "", "x", chain])
    return root


def perfect_rows() -> list[ScoreRow]:
    """Every copy right at 0.9, every same_product right at 0.8, none queries at 0.1."""
    return [
        ScoreRow("q00001.jpg", "A", "A/a1.jpg", 0.9),
        ScoreRow("q00002.jpg", "B", "B/b1.jpg", 0.9),
        ScoreRow("q00003.jpg", "A", "A/a2.jpg", 0.9),
        ScoreRow("q00004.jpg", "A", "A/a3.jpg", 0.8),
        ScoreRow("q00005.jpg", "B", "B/b2.jpg", 0.8),
        ScoreRow("q00006.jpg", "A", "A/a1.jpg", 0.1),
        ScoreRow("q00007.jpg", "B", "B/b1.jpg", 0.1),
    ]


@pytest.fixture
def bench(tmp_path):
    return load_benchmark(make_bench(tmp_path / "bench"))


def test_load_benchmark(bench):
    assert list(bench.truth) == [g[0] for g in GT]
    assert bench.truth["q00001.jpg"] == ("copy", "A", "A/a1.jpg")
    assert bench.main_edits == {"q00001.jpg": "blur", "q00002.jpg": "unedited", "q00003.jpg": "blur",
                                "q00004.jpg": "rotate"}
    assert bench.references == set()   # empty reference folders


def test_split_edit_chain_respects_parentheses_and_quotes():
    assert split_edit_chain("meme('a+b (c')+rotate(5)") == ["meme('a+b (c')", "rotate(5)"]
    assert split_edit_chain("pad(0.2,0.1)+blur(1.9) + hflip") == ["pad(0.2,0.1)", "blur(1.9)", "hflip"]
    assert split_edit_chain("") == []


def test_perfect_scores(bench):
    m = evaluate(bench, perfect_rows())
    assert m["n_queries"] == {"copy": 3, "same_product": 2, "none": 2}
    assert m["brand_uAP"] == 1.0 and m["copy_uAP"] == 1.0
    # brand: all 5 positives above both negatives; the lowest threshold with precision >= 0.9 and
    # full recall is 0.8 (the same_product scores). copy: 3 positives at 0.9.
    assert m["brand_R@P90"] == 1.0 and m["brand_thr@P90"] == 0.8
    assert m["copy_R@P90"] == 1.0 and m["copy_thr@P90"] == 0.9
    assert m["top1_copy"] == m["top1_same_product"] == m["top1_copy_ref"] == 1.0
    assert m["fp_at_p90"] == 0.0        # none queries score 0.1 < 0.8
    assert m["warnings"] == []


def test_distractor_ranked_above_positives(bench):
    rows = perfect_rows()
    rows[5] = ScoreRow("q00006.jpg", "A", "A/a1.jpg", 0.95)   # a none query on top
    m = evaluate(bench, rows)
    # brand ranking: neg, P, P, P (0.9), P, P (0.8), neg (0.1)
    #   AP = (1/2 + 2/3 + 3/4 + 4/5 + 5/6) / 5 = (213/60) / 5 = 0.71
    assert m["brand_uAP"] == pytest.approx(0.71)
    # precision at thresholds 0.95, 0.9, 0.8 = 0, 3/4, 5/6: none reaches 0.9
    assert m["brand_R@P90"] == 0.0 and m["brand_thr@P90"] is None
    assert m["fp_at_p90"] is None
    # copy ranking (same_product rows ignored): neg, P, P, P, neg  ->  (1/2 + 2/3 + 3/4) / 3 = 23/36
    assert m["copy_uAP"] == pytest.approx(23 / 36)
    # top-1 is per query and unaffected
    assert m["top1_copy"] == 1.0 and m["top1_copy_ref"] == 1.0


def test_ties_are_pessimistic(bench):
    rows = perfect_rows()
    rows[5] = ScoreRow("q00006.jpg", "A", "A/a1.jpg", 0.9)    # ties with the three copies
    m = evaluate(bench, rows)
    # negatives go first within the 0.9 group, so the ranking equals the distractor case above
    assert m["brand_uAP"] == pytest.approx(0.71)
    assert m["copy_uAP"] == pytest.approx(23 / 36)
    # the 0.9 group as a whole has precision 3/4; the 0.8 threshold 5/6: no P90 point
    assert m["brand_thr@P90"] is None and m["copy_R@P90"] == 0.0


def test_top1_ties_are_pessimistic(bench):
    rows = perfect_rows() + [
        ScoreRow("q00001.jpg", "B", "B/b1.jpg", 0.9),   # q1: brand and reference tie with wrong ones
        ScoreRow("q00002.jpg", "B", "B/b2.jpg", 0.9),   # q2: brand B unique, reference tie
    ]
    m = evaluate(bench, rows)
    assert m["top1_copy"] == pytest.approx(2 / 3)       # q2, q3 right
    assert m["top1_copy_ref"] == pytest.approx(1 / 3)   # only q3 right
    assert m["top1_same_product"] == 1.0


def test_pair_score_is_max_over_rows(bench):
    rows = perfect_rows() + [ScoreRow("q00001.jpg", "A", "A/a1.jpg", 0.2)]   # lower duplicate
    assert evaluate(bench, rows)["brand_uAP"] == 1.0
    assert evaluate(bench, rows)["n_rows"] == 8


def test_recall_at_p90_uses_whole_tie_groups(tmp_path):
    gt = [(f"q{i:05d}.jpg", "A", f"A/a{i}.jpg", "copy") for i in range(1, 11)]
    gt += [("q00011.jpg", "", "", "none"), ("q00012.jpg", "", "", "none")]
    b = load_benchmark(make_bench(tmp_path / "b", gt=gt, edits=None))
    rows = [ScoreRow(q, c, r, 0.9) for q, c, r, _ in gt[:9]]
    rows += [ScoreRow("q00010.jpg", "A", "A/a10.jpg", 0.5),
             ScoreRow("q00011.jpg", "A", "A/a1.jpg", 0.9),   # negative tied with 9 positives
             ScoreRow("q00012.jpg", "A", "A/a1.jpg", 0.5)]   # negative tied with the 10th
    m = evaluate(b, rows)
    # threshold 0.9: 9 TP / 10 -> precision 0.9, recall 0.9; threshold 0.5: 10/12 < 0.9
    assert m["brand_R@P90"] == pytest.approx(0.9) and m["brand_thr@P90"] == 0.9
    assert m["copy_R@P90"] == pytest.approx(0.9) and m["copy_thr@P90"] == 0.9
    # AP = (1/2 + 2/3 + ... + 9/10 + 10/12) / 10
    assert m["brand_uAP"] == pytest.approx((sum(k / (k + 1) for k in range(1, 10)) + 10 / 12) / 10)
    assert m["fp_at_p90"] == 0.5     # q11 (0.9 >= 0.9) flagged, q12 not
    assert m["per_edit"] is None     # no manifest


def test_missing_listing_is_a_miss(bench):
    rows = [r for r in perfect_rows() if r.listing != "q00003.jpg"]
    m = evaluate(bench, rows)
    # brand: 4 of 5 positives found, all ranked first -> AP 4/5; copy: 2 of 3 -> AP 2/3
    assert m["brand_uAP"] == pytest.approx(0.8) and m["brand_R@P90"] == pytest.approx(0.8)
    assert m["copy_uAP"] == pytest.approx(2 / 3)
    assert m["top1_copy"] == pytest.approx(2 / 3) and m["top1_copy_ref"] == pytest.approx(2 / 3)
    assert any("1 of 7 queries have no rows" in w for w in m["warnings"])


def test_same_product_rows_ignored_for_copy_metrics(bench):
    rows = perfect_rows() + [ScoreRow("q00004.jpg", "A", "A/a1.jpg", 0.99),
                             ScoreRow("q00005.jpg", "B", "B/b1.jpg", 0.99)]
    m = evaluate(bench, rows)
    assert m["copy_uAP"] == 1.0 and m["copy_R@P90"] == 1.0
    # at brand level those rows are (right) positives and just move to the top
    assert m["brand_uAP"] == 1.0
    # a none query with the same high score is a copy negative: ranking neg, P, P, P -> 23/36
    m = evaluate(bench, perfect_rows() + [ScoreRow("q00007.jpg", "B", "B/b1.jpg", 0.99)])
    assert m["copy_uAP"] == pytest.approx(23 / 36)


def test_per_edit_grouping(bench):
    rows = perfect_rows()
    rows[2] = ScoreRow("q00003.jpg", "A", "A/a9.jpg", 0.9)   # q3 (blur): right brand, wrong image
    rows[1] = ScoreRow("q00002.jpg", "A", "A/a1.jpg", 0.9)   # q2 (unedited): wrong brand
    pe = evaluate(bench, rows)["per_edit"]
    # groups ordered by size, then name; same_product q4 (rotate) is not a copy
    assert list(pe) == ["blur", "unedited"]
    assert pe["blur"] == {"n": 2, "top1_brand": 1.0, "top1_ref": 0.5}
    assert pe["unedited"] == {"n": 1, "top1_brand": 0.0, "top1_ref": 0.0}


def test_copy_query_missing_from_manifest_is_unknown(tmp_path):
    b = load_benchmark(make_bench(tmp_path / "b", edits={"q00001.jpg": "crop(0.5)"}))
    pe = evaluate(b, perfect_rows())["per_edit"]
    assert pe == {"unknown": {"n": 2, "top1_brand": 1.0, "top1_ref": 1.0},
                  "crop": {"n": 1, "top1_brand": 1.0, "top1_ref": 1.0}}


def test_paths_are_normalised(bench):
    root = Path(bench.bench_dir)
    rows = [r._replace(listing=f"queries/{r.listing}", reference=f"references/{r.reference}")
            for r in perfect_rows()]
    rows[0] = rows[0]._replace(listing=str(root / "queries" / "q00001.jpg"), brand="")  # brand from ref
    m = evaluate(bench, rows)
    assert m["brand_uAP"] == 1.0 and m["copy_uAP"] == 1.0 and m["top1_copy_ref"] == 1.0


def test_unknown_listing_is_an_error(bench):
    with pytest.raises(EvaluationError, match="not queries"):
        evaluate(bench, perfect_rows() + [ScoreRow("x.jpg", "A", "", 0.5)])


def test_warnings_for_unknown_classes(tmp_path):
    root = make_bench(tmp_path / "b")
    (root / "references" / "A" / "a1.jpg").write_bytes(b"")
    m = evaluate(load_benchmark(root), perfect_rows())
    assert any("brand(s) not among" in w for w in m["warnings"])        # B has no files
    assert any("reference path(s) not found" in w for w in m["warnings"])


def test_no_reference_images_gives_zero_copy_metrics(bench):
    m = evaluate(bench, [r._replace(reference="") for r in perfect_rows()])
    assert m["copy_uAP"] == 0.0 and m["copy_thr@P90"] is None and m["brand_uAP"] == 1.0
    assert any("no row has a reference" in w for w in m["warnings"])


def test_ranked_metrics_edge_cases():
    assert math.isnan(ranked_metrics([0.5], [False], 0)["ap"])
    assert ranked_metrics([], [], 3) == {"ap": 0.0, "recall": 0.0, "threshold": None}


def test_score_rows_from_results():
    results = [
        {"listing": "q00001.jpg", "status": "ok", "brand": "A", "reference": "A/a1.jpg", "score": 0.9,
         "matches": [{"brand": "A", "reference": "A/a1.jpg", "score": 0.9},
                     {"brand": "B", "reference": "B/b1.jpg", "score": 0.4}]},
        {"listing": "q00002.jpg", "status": "ok", "brand": "B", "reference": "B/b1.jpg", "score": 0.7},
        {"listing": "q00003.jpg", "status": "not_an_image", "brand": "", "reference": "", "score": 0.0},
        {"listing": "q00006.jpg", "status": "ok", "brand": "", "reference": "", "score": 0.0},
    ]
    assert score_rows_from_results(results) == [
        ScoreRow("q00001.jpg", "A", "A/a1.jpg", 0.9), ScoreRow("q00001.jpg", "B", "B/b1.jpg", 0.4),
        ScoreRow("q00002.jpg", "B", "B/b1.jpg", 0.7)]


def test_scores_csv_round_trip_and_file_evaluation(bench, tmp_path):
    path = tmp_path / "scores.csv"
    rows = perfect_rows() + [ScoreRow("q00006.jpg", "B", "B/b2.jpg", 0.1234567890123)]
    write_scores_csv(rows, path)
    assert read_scores_csv(path) == rows
    m = evaluate_scores_file(bench.bench_dir, path)
    assert m["brand_uAP"] == 1.0 and m["scores"] == str(path.resolve())
    report = format_report(m)
    for key in ("brand_uAP", "copy_R@P90", "fp_at_p90", "blur", "unedited"):
        assert key in report


def test_bad_scores_file(bench, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("listing,brand,score\nq00001.jpg,A,0.5\n")
    with pytest.raises(EvaluationError, match="needs columns"):
        read_scores_csv(path)
    path.write_text("listing,brand,reference,score\nq00001.jpg,A,,nan\n")
    with pytest.raises(EvaluationError, match="finite"):
        read_scores_csv(path)
    with pytest.raises(EvaluationError, match="no ground_truth.csv"):
        load_benchmark(tmp_path / "nowhere")


def test_script_json_output(bench, tmp_path):
    path = tmp_path / "scores.csv"
    write_scores_csv(perfect_rows(), path)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), bench.bench_dir, str(path),
                          "--json"], capture_output=True, text=True, check=True).stdout
    m = json.loads(out)
    assert m["copy_uAP"] == 1.0 and m["per_edit"]["blur"]["n"] == 2


def test_false_positives_are_the_distractors_at_or_above_the_threshold(bench, tmp_path):
    rows = perfect_rows() + [ScoreRow("queries/q00006.jpg", "B", "B/b2.jpg", 0.85),  # its best row
                             ScoreRow("q00007.jpg", "A", "A/a2.jpg", 0.8),
                             ScoreRow("q00004.jpg", "B", "B/b1.jpg", 0.99)]  # a positive's wrong brand: not a distractor
    found = false_positives(bench, rows, threshold=0.8)
    assert found == [ScoreRow("q00006.jpg", "B", "B/b2.jpg", 0.85), ScoreRow("q00007.jpg", "A", "A/a2.jpg", 0.8)]
    assert false_positives(bench, rows, threshold=0.9) == []
    path = tmp_path / "scores.csv"
    write_scores_csv(rows[:-1], path)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), bench.bench_dir, str(path),
                          "--false-positives"], capture_output=True, text=True, check=True).stdout
    # five positives cannot carry a distractor above a 90%-precision threshold: the script says so
    assert "distractors at or above the brand P90 threshold (0.9): 0" in out
