"""Suspicion score, brands.csv, price parsing and ranking of results files."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from matcher.errors import CatalogError, ListingsError
from matcher.inputs.brands import check_listing_prices, parse_price, read_brand_prices
from matcher.inputs.listings import manifest_columns
from matcher.scan.ranking import rank_results
from matcher.scan.suspicion import assess, counterfeit_terms
from matcher.scan.writers import open_writer, read_results

REPO = Path(__file__).resolve().parents[2]
LISTINGS = REPO / "demo" / "listings"


# ------------------------------------------------------------------ listing signals
@pytest.mark.parametrize("title, terms", [
    ("AAA replica 1:1 Acme sneakers", ["replica", "1:1", "aaa"]),
    ("Acme sneakers, inspired by the original", ["inspired by"]),
    ("Copyright 2024 Acme, genuine", []),  # 'copy' inside a word does not count
    ("Batteries AAA+ pack", ["aaa"]),
    ("Acme sneakers size 42", []),
])
def test_counterfeit_terms_are_whole_words(title, terms):
    assert counterfeit_terms(title) == terms


@pytest.mark.parametrize("text, value", [
    ("12.99", 12.99), ("$12.99", 12.99), ("12,99 €", 12.99), ("1,299.00", 1299.0), ("1.299,00", 1299.0),
    ("EUR 5", 5.0), ("1,299", 1299.0), ("", None), ("  ", None),
])
def test_parse_price(text, value):
    assert parse_price(text) == value


@pytest.mark.parametrize("text", ["cheap", "-3.00", "n/a"])
def test_parse_price_refuses_non_prices(text):
    with pytest.raises(ValueError):
        parse_price(text)


def test_same_image_ranks_higher_when_titled_as_replica_at_a_fraction_of_the_price():
    plain = assess("copy", "Acme", "Acme/front.jpg", 0.97, title="Acme sneakers", price=79.0, typical_price=80.0)
    replica = assess("copy", "Acme", "Acme/front.jpg", 0.97, title="AAA replica 1:1 Acme sneakers", price=12.0,
                     typical_price=80.0)
    assert replica.value > plain.value
    assert plain.value == pytest.approx(0.7 * 0.97, abs=1e-6)  # the image evidence alone
    assert "'replica'" in replica.explanation and "85% below Acme's typical 80.00" in replica.explanation
    assert len(plain.reasons) == 1 and plain.reasons[0].startswith("image: edited copy of Acme's photo")


def test_no_image_match_is_never_made_suspicious_by_title_or_price():
    image_only = assess("no_match", "Acme", "Acme/front.jpg", 0.2)
    loud = assess("no_match", "Acme", "Acme/front.jpg", 0.2, title="1:1 replica AAA fake", price=1.0,
                  typical_price=80.0)
    assert loud.value == image_only.value
    assert "not counted" in loud.explanation and "'replica'" in loud.explanation


def test_suspicion_stays_in_unit_interval_and_below_stronger_image_evidence():
    strongest = assess("copy", "Acme", "r", 1.0, title="replica 1:1", price=0.01, typical_price=80.0)
    assert strongest.value == pytest.approx(1.0)
    weak_image_loud_listing = assess("same_product", "Acme", "r", 0.55, title="replica 1:1", price=0.01,
                                     typical_price=80.0)
    strong_image_plain_listing = assess("copy", "Acme", "r", 0.99)
    assert weak_image_loud_listing.value < strong_image_plain_listing.value


# ------------------------------------------------------------------ brands.csv
def _catalog_with_brands(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "catalog"
    for brand in ("Acme", "Bolt"):
        (root / brand).mkdir(parents=True)
    (root / "brands.csv").write_text(text, encoding="utf-8")
    return root


def test_brand_prices_are_read(tmp_path):
    root = _catalog_with_brands(tmp_path, "brand,typical_price\nAcme,80\nBolt,\"1,299.00\"\n")
    assert read_brand_prices(root, ["Acme", "Bolt"]) == {"Acme": 80.0, "Bolt": 1299.0}
    assert read_brand_prices(tmp_path, ["Acme"]) == {}  # no brands.csv: no price signal


@pytest.mark.parametrize("text, where, what", [
    ("brand,price\nAcme,80\n", ":1:1:", "missing typical_price"),
    ("brand,typical_price\nAcme,80\nAcmee,70\n", ":3:1:", "'Acmee' has no folder"),
    ("brand,typical_price\nAcme,80\nBolt,cheap\n", ":3:2:", "'cheap' is not a price"),
    ("brand,typical_price\nAcme,80\nAcme,70\n", ":3:1:", "appears twice"),
    ("brand,typical_price\nAcme,0\n", ":2:2:", "positive number"),
])
def test_malformed_brands_csv_names_file_line_and_column(tmp_path, text, where, what):
    root = _catalog_with_brands(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        read_brand_prices(root, ["Acme", "Bolt"])
    message = str(err.value)
    assert f"brands.csv{where}" in message and what in message and "\n" not in message


def test_malformed_manifest_price_names_file_line_and_column(tmp_path):
    manifest = tmp_path / "listings.csv"
    manifest.write_text("path,title,price\na.jpg,Acme,3.50\nb.jpg,Acme,\nc.jpg,Acme,call me\n", encoding="utf-8")
    with pytest.raises(ListingsError, match=r"listings\.csv:4:3: price 'call me' is not a price"):
        check_listing_prices(manifest, manifest_columns(manifest))
    jsonl = tmp_path / "listings.jsonl"
    jsonl.write_text('{"path": "a.jpg", "price": 3}\n{"path": "b.jpg"}\n{"path": "c.jpg", "price": "x1"}\n')
    with pytest.raises(ListingsError, match=r"listings\.jsonl:3:1: price"):
        check_listing_prices(jsonl, manifest_columns(jsonl))


# ------------------------------------------------------------------ ranking a results file
def _write_rows(path: Path, rows: list[dict]) -> None:
    with open_writer(path, extra_fields=["title"]) as writer:
        for row in rows:
            writer.write(row)


ROWS = [
    {"listing": "a.jpg", "status": "ok", "verdict": "copy", "suspicion": 0.2, "position": 0, "matches": []},
    {"listing": "b.jpg", "status": "unreadable", "error": "b.jpg: truncated", "position": 1},
    {"listing": "c.jpg", "status": "ok", "verdict": "copy", "suspicion": 0.9, "title": "x,\n\"y\"", "position": 2,
     "matches": [{"brand": "A"}]},
    {"listing": "d.jpg", "status": "ok", "verdict": "no_match", "suspicion": 0.05, "position": 3},
    {"listing": "e.jpg", "status": "ok", "verdict": "copy", "suspicion": 0.9, "position": 4},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_rank_results_sorts_by_suspicion_and_keeps_failed_rows_last(tmp_path, suffix):
    path = tmp_path / f"results{suffix}"
    _write_rows(path, ROWS)
    assert rank_results(path) == 5
    rows = read_results(path)
    assert [r["listing"] for r in rows] == ["c.jpg", "e.jpg", "a.jpg", "d.jpg", "b.jpg"]
    assert rows[0]["title"] == "x,\n\"y\"" and rows[0]["matches"] == [{"brand": "A"}]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_min_suspicion_drops_unsuspicious_rows_but_never_failed_ones(tmp_path, suffix):
    path = tmp_path / f"results{suffix}"
    _write_rows(path, ROWS)
    assert rank_results(path, min_suspicion=0.5) == 3
    assert [r["listing"] for r in read_results(path)] == ["c.jpg", "e.jpg", "b.jpg"]
    assert not list(tmp_path.glob(".*ranking"))  # no temporary file left behind


def test_rank_results_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    _write_rows(path, ROWS[:2])
    with open(path, "ab") as f:
        f.write(b'{"listing": "torn.jpg", "sta')
    rank_results(path)
    assert [r["listing"] for r in read_results(path)] == ["a.jpg", "b.jpg"]
    assert path.read_bytes().endswith(b"\n")


# ------------------------------------------------------------------ end to end on the demo index
def test_scan_ranks_the_replica_ad_above_the_plain_ad_of_the_same_copied_image(demo_matcher, tmp_path):
    from matcher.scan.runner import scan

    copy = LISTINGS / "listing_01.jpg"  # an edited copy of a Yoggi-Vanilla-Yoghurt catalog photo
    unrelated = LISTINGS / "listing_02.jpg"  # an everyday photo, matches nothing
    manifest = tmp_path / "listings.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "listing_id", "title", "price"])
        writer.writerow([str(copy), "plain", "Yoggi Vanilla Yoghurt 1 L", "1.89"])
        writer.writerow([str(copy), "replica", "Yoggi Vanilla Yoghurt AAA replica 1:1", "0.35"])
        writer.writerow([str(unrelated), "loud", "1:1 replica, AAA quality", "0.10"])
        writer.writerow([str(LISTINGS / "broken.jpg"), "broken", "replica", "0.10"])
    out = tmp_path / "results.jsonl"
    summary = scan(manifest, demo_matcher, out, workers=0)
    rows = read_results(out)
    assert summary.total == 4 and [r["listing_id"] for r in rows] == ["replica", "plain", "loud", "broken"]
    replica, plain, loud, broken = rows
    assert replica["score"] == plain["score"] and replica["verdict"] == "copy"
    assert replica["suspicion"] > plain["suspicion"]
    assert "title says 'replica', '1:1', 'aaa'" in replica["explanation"]
    assert "below Yoggi-Vanilla-Yoghurt's typical 1.89" in replica["explanation"]
    assert "title" not in plain["explanation"] and "price" not in plain["explanation"]
    assert loud["verdict"] == "no_match" and loud["suspicion"] == pytest.approx(0.7 * loud["score"], abs=1e-5)
    assert "not counted" in loud["explanation"]
    assert broken["status"] == "not_an_image" and broken["suspicion"] is None
    assert replica["path"] == str(copy.resolve())
    keypoints = replica["matches"][0]["keypoints"]
    assert len(keypoints) >= 8 and all(len(p) == 4 and all(0.0 <= v <= 1.0 for v in p) for p in keypoints)


def test_cli_scan_min_suspicion_and_bad_price(demo_index, tmp_path):
    from typer.testing import CliRunner

    from matcher.cli import app

    out, page = tmp_path / "results.csv", tmp_path / "report.html"
    result = CliRunner().invoke(app, ["scan", str(REPO / "demo" / "listings.csv"), "--index", str(demo_index),
                                      "--out", str(out), "--min-suspicion", "0.5", "--workers", "0",
                                      "--report", str(page)])
    assert result.exit_code == 0, result.output
    rows = read_results(out)
    suspicions = [r["suspicion"] for r in rows if r["status"] == "ok"]
    assert suspicions == sorted(suspicions, reverse=True) and min(suspicions) >= 0.5
    assert [r["listing"] for r in rows if r["status"] != "ok"] == ["listings/broken.jpg"]
    assert "below --min-suspicion left out" in result.output
    suspects = [r for r in rows if r["verdict"] in ("copy", "same_product")]
    html = page.read_text(encoding="utf-8")
    assert html.count('<article class="card"') == len(suspects) > 10
    assert "listings/broken.jpg" in html and f"report {page}" in result.output

    again = tmp_path / "again.html"
    result = CliRunner().invoke(app, ["report", str(out), "--index", str(demo_index), "--out", str(again)])
    assert result.exit_code == 0 and again.read_text(encoding="utf-8").count('<article class="card"') == len(suspects)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope.jsonl"), "--index", str(demo_index)])
    assert result.exit_code == 1 and result.output.strip() == f"error: {tmp_path / 'nope.jsonl'}: no such results file"

    bad = tmp_path / "bad.csv"
    bad.write_text(f"path,title,price\n{LISTINGS / 'listing_01.jpg'},x,one euro\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", str(bad), "--index", str(demo_index), "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().endswith("bad.csv:2:3: price 'one euro' is not a price")


def test_index_keeps_typical_prices_and_reference_thumbnails(demo_index):
    from matcher.index.manifest import published_manifest
    from matcher.index.version import reference_thumbnails

    _, manifest = published_manifest(demo_index)
    assert manifest["typical_prices"]["Yoggi-Vanilla-Yoghurt"] == pytest.approx(1.89)
    thumbnails = reference_thumbnails(demo_index)
    assert len(thumbnails) == manifest["counts"]["references"]
    assert all(jpeg[:2] == b"\xff\xd8" for jpeg in thumbnails.values())
    json.dumps(manifest)  # still plain JSON
