"""Build + scan of the bundled demo with the real weights: what a user of `make demo` relies on."""
from __future__ import annotations

from collections import Counter
import json

from PIL import Image
import pytest

from matcher import MatchResult, scan
from matcher.scan.writers import read_results
from tests.badimages import write_bad_images
from tests.conftest import DEMO


@pytest.fixture(scope="module")
def demo_rows(demo_matcher, tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "demo.jsonl"
    summary = scan(DEMO / "listings.csv", demo_matcher, out, top_k=3)
    return summary, read_results(out)


def test_one_row_per_listing_with_manifest_fields(demo_rows):
    summary, rows = demo_rows
    with open(DEMO / "listings.csv", encoding="utf-8") as f:
        n_inputs = sum(1 for _ in f) - 1
    assert len(rows) == n_inputs == summary.total
    assert sorted(r["position"] for r in rows) == list(range(n_inputs))
    assert all(r["listing_id"].startswith("MP-") and "title" in r and "price" in r for r in rows)


def test_the_summary_says_how_far_the_cascade_went(demo_rows, demo_truth):
    """Every readable listing is counted once by how far the cascade took it; every copy and product photo is
    checked in full (SIFT, regions), and the line a scan prints says so."""
    summary, rows = demo_rows
    assert sum(summary.checks.values()) == summary.statuses["ok"] == len(rows) - 1
    products = sum(demo_truth[r["listing"]]["kind"] in ("copy", "same_product") for r in rows)
    assert summary.checks["full"] >= products
    assert f"checked in full {summary.checks['full']}" in summary.line()


def test_bad_listing_is_a_row_with_its_reason(demo_rows):
    _, rows = demo_rows
    broken = [r for r in rows if r["listing"].endswith("broken.jpg")]
    assert len(broken) == 1
    assert broken[0]["status"] == "not_an_image" and "broken.jpg" in broken[0]["error"]


def test_copies_are_found_with_brand_and_reference(demo_rows, demo_truth):
    _, rows = demo_rows
    copies = [r for r in rows if demo_truth[r["listing"]]["kind"] == "copy"]
    right_brand = sum(r["brand"] == demo_truth[r["listing"]]["brand"] for r in copies)
    right_ref = sum(r["reference"] == demo_truth[r["listing"]]["reference"] for r in copies)
    flagged = sum(r["verdict"] == "copy" for r in copies)
    assert right_brand >= 0.9 * len(copies)
    assert right_ref >= 0.8 * len(copies)
    assert flagged >= 0.8 * len(copies)


def test_same_product_photos_match_their_brand(demo_rows, demo_truth):
    _, rows = demo_rows
    same = [r for r in rows if demo_truth[r["listing"]]["kind"] == "same_product"]
    assert sum(r["brand"] == demo_truth[r["listing"]]["brand"] for r in same) >= 0.6 * len(same)


def test_unrelated_photos_score_below_matches(demo_rows, demo_truth):
    _, rows = demo_rows
    kind = {r["listing"]: demo_truth[r["listing"]]["kind"] for r in rows}
    none_scores = [r["score"] for r in rows if kind[r["listing"]] == "none"]
    copy_scores = sorted(r["score"] for r in rows if kind[r["listing"]] == "copy")
    assert all(r["verdict"] == "no_match" for r in rows if kind[r["listing"]] == "none")
    assert max(none_scores) < copy_scores[len(copy_scores) // 5]  # above the copies' 20th percentile


def test_scores_are_probabilities_and_matches_sorted(demo_rows):
    _, rows = demo_rows
    for r in rows:
        if r["status"] != "ok":
            continue
        assert 0.0 <= r["score"] <= 1.0
        scores = [m["score"] for m in r["matches"]]
        assert scores == sorted(scores, reverse=True) and len(scores) <= 3
        assert r["matches"][0]["brand"] == r["brand"]


def test_identical_bytes_get_identical_rows(demo_rows):
    _, rows = demo_rows
    by_ref = Counter((r["brand"], r["reference"], r["score"]) for r in rows if r["status"] == "ok")
    assert max(by_ref.values()) >= 2  # the demo holds one byte-identical repost


def test_python_api_accepts_path_bytes_and_pil(demo_matcher, demo_truth):
    listing, truth = next((k, v) for k, v in demo_truth.items() if v["kind"] == "copy")
    path = DEMO / listing
    results = demo_matcher.match_many([path, path.read_bytes(), Image.open(path)])
    assert all(isinstance(r, MatchResult) and r.ok for r in results)
    assert {r.brand for r in results} == {truth["brand"]}
    with pytest.raises(AttributeError):
        results[0].brand = "other"  # results are immutable


def test_python_api_bad_input_is_a_result_not_an_exception(demo_matcher, tmp_path):
    expected = write_bad_images(tmp_path)
    names = sorted(expected)
    results = demo_matcher.match_many([tmp_path / n for n in names])
    assert len(results) == len(names)
    for name, result in zip(names, results):
        assert result.status == expected[name], (name, result.error)
        if result.status != "ok":
            assert name in result.error


def test_scan_of_bad_images_folder_has_one_row_each(demo_matcher, tmp_path):
    folder = tmp_path / "listings"
    folder.mkdir()
    expected = {k: v for k, v in write_bad_images(folder).items() if (folder / k).exists()}
    out = tmp_path / "bad.csv"
    summary = scan(folder, demo_matcher, out)
    rows = read_results(out)
    assert {r["listing"]: r["status"] for r in rows} == expected
    assert summary.total == len(expected)


def test_resume_finishes_without_duplicates(demo_matcher, tmp_path):
    out = tmp_path / "resume.jsonl"
    scan(DEMO / "listings.csv", demo_matcher, out, batch_size=8)
    full = out.read_text(encoding="utf-8").splitlines()
    # simulate a kill after 10 rows, mid-way through the 11th line
    out.write_text("\n".join(full[:10]) + "\n" + full[10][:25], encoding="utf-8")
    summary = scan(DEMO / "listings.csv", demo_matcher, out, resume=True, batch_size=8)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert summary.skipped == 10
    assert sorted(r["position"] for r in rows) == list(range(len(full)))
