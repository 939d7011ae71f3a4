"""The report's cases: suspects grouped by cluster and by seller (listings, brands, clusters per seller)."""
from __future__ import annotations

from pathlib import Path

from matcher.report.groups import group_rows, groups_section
from matcher.report.rows import load_rows
from matcher.report.write import write_report
from matcher.scan.writers import open_writer


def _write(path: Path, rows: list[dict]) -> Path:
    with open_writer(path, extra_fields=["seller"]) as writer:
        for position, row in enumerate(rows):
            writer.write(dict({"status": "ok", "verdict": "no_match", "brand": "", "reference": "", "score": 0.1,
                               "suspicion": 0.1, "path": "", "cluster_id": "", "seller": ""}, **row,
                              listing=f"l{position}.jpg", position=position))
    return path


ROWS = [
    {"verdict": "copy", "brand": "Oatly", "suspicion": 0.9, "cluster_id": "c0", "seller": "shop<b>"},
    {"verdict": "copy", "brand": "Oatly", "suspicion": 0.8, "cluster_id": "c0", "seller": "bazaar"},
    {"verdict": "no_match", "cluster_id": "c0", "seller": "bazaar"},
    {"verdict": "same_product", "brand": "Arla", "suspicion": 0.7, "seller": "shop<b>"},
    {"verdict": "copy", "brand": "Arla", "suspicion": 0.6, "seller": "shop<b>"},
    {"verdict": "no_match", "cluster_id": "c5", "seller": "quiet"},
    {"verdict": "no_match", "cluster_id": "c5", "seller": "quiet"},
]


def test_groups_count_listings_suspects_brands_and_clusters(tmp_path):
    rows = load_rows(_write(tmp_path / "r.jsonl", ROWS))
    clusters = group_rows(rows, "cluster_id")
    assert [(g.name, g.listings, g.suspects) for g in clusters] == [("c0", 3, 2)]  # c5 has no suspect
    assert clusters[0].others == {"shop<b>": 1, "bazaar": 2}
    sellers = group_rows(rows, "seller")
    assert [(g.name, g.listings, g.suspects) for g in sellers] == [("shop<b>", 3, 3), ("bazaar", 2, 1)]
    assert sellers[0].brands == {"Arla": 2, "Oatly": 1} and sellers[0].others == {"c0": 1}


def test_report_page_has_both_tables_escaped(tmp_path):
    results = _write(tmp_path / "r.csv", ROWS)
    write_report(results, None, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert 'id="cluster-table"' in page and 'id="seller-table"' in page
    assert "shop&lt;b&gt;" in page and "shop<b>" not in page


def test_no_cases_section_without_clusters_or_sellers(tmp_path):
    rows = load_rows(_write(tmp_path / "r.jsonl", [{"verdict": "copy", "brand": "Oatly", "suspicion": 0.9}]))
    assert groups_section(rows) == ""
