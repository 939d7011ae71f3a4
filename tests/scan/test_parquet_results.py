"""Parquet results (matcher/scan/parquet_results.py, staging.py): the rows of a JSONL file, typed, resumable."""
from __future__ import annotations

import sys

import pytest

pytest.importorskip("pyarrow")

from matcher.errors import MatcherError  # noqa: E402
from matcher.scan.distributed import _import_ray  # noqa: E402
from matcher.scan.parquet_results import results_schema, rows_to_table, write_parquet  # noqa: E402
from matcher.scan.staging import finish_results, staged_results  # noqa: E402
from matcher.scan.writers import NUMBER_FIELDS, open_writer, read_results, result_columns  # noqa: E402


def row(position: int, **extra) -> dict:
    base = {"listing": f"dir/img{position}.jpg", "listing_id": f"L{position}", "status": "ok", "error": None,
            "verdict": "copy", "brand": "acme", "reference": "acme/ref.jpg", "score": 0.5 + position / 100,
            "suspicion": 0.25, "explanation": "edited copy", "path": f"/data/dir/img{position}.jpg",
            "position": position, "title": "Acme, \"genuine\"\nnew", "seller": "s1",
            "matches": [{"brand": "acme", "reference": "acme/ref.jpg", "score": 0.9, "copy_score": 0.8,
                         "inliers": 42, "keypoints": [[0.1, 0.2, 0.3, 0.4]]},
                        {"brand": "other", "reference": "other/x.jpg", "score": 0.1, "copy_score": 0.0,
                         "inliers": -1}]}
    base.update(extra)
    return base


def failed(position: int) -> dict:
    return row(position, status="unreadable", error="img.jpg: cannot decode image", verdict="", brand="",
               reference="", score=None, suspicion=None, explanation="", matches=[])


def test_parquet_results_read_back_as_the_jsonl_rows(tmp_path):
    rows = [row(0), failed(1), row(2, title="ünïcode ✓", seller="")]
    with open_writer(tmp_path / "out.jsonl", extra_fields=["title", "seller"]) as writer:
        for r in rows:
            writer.write(r)
    columns = result_columns(["title", "seller"])
    schema = results_schema(columns, NUMBER_FIELDS)
    write_parquet(tmp_path / "out.parquet", [rows_to_table(rows, schema)], schema)
    assert read_results(tmp_path / "out.parquet") == read_results(tmp_path / "out.jsonl")
    assert str(schema.field("matches").type).startswith("list<item: struct<brand: string")
    assert schema.field("score").type == "double" and schema.field("position").type == "int64"


def test_a_scan_to_parquet_spools_resumes_and_finishes_atomically(tmp_path):
    target = tmp_path / "results.parquet"
    spool = staged_results(target, resume=False)
    assert spool != target and spool.parent == target.parent and spool.name.startswith(".")
    with open_writer(spool, extra_fields=["title", "seller"]) as writer:
        writer.write(row(0))
    assert not target.exists()  # killed here: only the spool exists
    again = staged_results(target, resume=True)
    with open_writer(again, extra_fields=["title", "seller"], resume=True) as writer:
        assert writer.finished_positions == {0}
        writer.write(failed(1))
        columns = writer.columns
    finish_results(again, target, columns)
    assert not spool.exists()
    assert [r["position"] for r in read_results(target)] == [0, 1]
    # resuming a finished Parquet scan finds every listing done
    third = staged_results(target, resume=True)
    with open_writer(third, extra_fields=["title", "seller"], resume=True) as writer:
        assert writer.finished_positions == {0, 1}


def test_jsonl_and_csv_results_are_written_in_place(tmp_path):
    for name in ("r.jsonl", "r.csv"):
        assert staged_results(tmp_path / name, resume=False) == tmp_path / name


def test_a_sharded_scans_folder_reads_as_its_rows_in_shard_order(tmp_path):
    schema = results_schema(result_columns(["title", "seller"]), NUMBER_FIELDS)
    out = tmp_path / "sharded"
    write_parquet(out / "part-00001.parquet", [rows_to_table([row(2), row(3)], schema)], schema)
    write_parquet(out / "part-00000.parquet", [rows_to_table([row(0), failed(1)], schema)], schema)
    assert [r["position"] for r in read_results(out)] == [0, 1, 2, 3]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MatcherError, match="not the output of a sharded scan"):
        read_results(tmp_path / "empty")


def test_without_ray_the_engine_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MatcherError, match=r"pip install 'matcher\[ray\]'"):
        _import_ray()
