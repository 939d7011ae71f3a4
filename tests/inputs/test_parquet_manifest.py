"""Parquet listings manifests (matcher/inputs/parquet_manifest.py): the same listings as CSV/JSONL ones."""
from __future__ import annotations

from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from matcher.errors import ListingsError  # noqa: E402
from matcher.inputs import check_listing_prices, iter_listings, manifest_columns  # noqa: E402


def test_columns_travel_as_the_text_a_jsonl_manifest_gives(tmp_path):
    manifest = tmp_path / "listings.parquet"
    pq.write_table(pa.table({"listing_id": [7, 8, 9], "path": ["a.jpg", " sub/b.jpg ", "/abs/c.png"],
                             "price": [1.5, None, 3.0], "tags": [["x", "y"], [], None],
                             "boxed": [True, False, None]}), manifest)
    assert manifest_columns(manifest) == ["listing_id", "price", "tags", "boxed"]
    listings = list(iter_listings(manifest))
    assert [item.listing for item in listings] == ["a.jpg", "sub/b.jpg", "/abs/c.png"]
    assert [item.path for item in listings] == [tmp_path / "a.jpg", tmp_path / "sub" / "b.jpg", Path("/abs/c.png")]
    assert [item.position for item in listings] == [0, 1, 2]
    assert [dict(item.fields) for item in listings] == [
        {"listing_id": "7", "price": "1.5", "tags": '["x", "y"]', "boxed": "true"},
        {"listing_id": "8", "price": "", "tags": "[]", "boxed": "false"},
        {"listing_id": "9", "price": "3.0", "tags": "", "boxed": ""}]


def test_many_row_groups_stream_in_order(tmp_path):
    manifest = tmp_path / "big.parquet"
    pq.write_table(pa.table({"path": [f"img{i}.jpg" for i in range(10_000)]}), manifest, row_group_size=1000)
    listings = iter_listings(manifest)
    assert next(listings).listing == "img0.jpg"
    assert sum(1 for _ in listings) == 9_999


@pytest.mark.parametrize("table, message", [
    ({"file": ["a.jpg"]}, r"no 'path' column; columns found: 'file'"),
    ({"id": [1, 2], "path": ["a.jpg", None]}, r"big.parquet:2:2: 'path' must be a string \(got null\)"),
    ({"path": ["a.jpg", "  "]}, r"big.parquet:2:1: empty 'path'"),
])
def test_a_bad_row_is_named_by_file_row_and_column(tmp_path, table, message):
    manifest = tmp_path / "big.parquet"
    pq.write_table(pa.table(table), manifest)
    with pytest.raises(ListingsError, match=message):
        list(iter_listings(manifest))


def test_a_file_that_is_not_parquet_is_one_line(tmp_path):
    manifest = tmp_path / "listings.parquet"
    manifest.write_text("path\na.jpg\n", encoding="utf-8")
    with pytest.raises(ListingsError, match=r"listings.parquet: not a readable Parquet manifest"):
        manifest_columns(manifest)


def test_a_price_that_is_not_a_price_is_refused_with_its_row_and_column(tmp_path):
    manifest = tmp_path / "listings.parquet"
    pq.write_table(pa.table({"path": ["a.jpg", "b.jpg"], "price": ["3.00", "call me"]}), manifest)
    with pytest.raises(ListingsError, match=r"listings.parquet:2:2: price"):
        check_listing_prices(manifest, manifest_columns(manifest))
