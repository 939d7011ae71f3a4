"""Tests for matcher.scan.writers: results files, round-trips and resume."""
import csv
import json

import pytest

from matcher.errors import MatcherError
from matcher.scan.writers import RESULT_FIELDS, open_writer, read_results


def row(position, **extra):
    base = {
        "listing": f"img{position}.jpg", "listing_id": f"L{position}", "status": "ok", "error": None,
        "verdict": "match", "brand": "acme", "reference": "ref-1", "score": 0.5 + position / 100,
        "position": position,
    }
    base.update(extra)
    return base


def write_rows(path, positions, resume=False, **kwargs):
    with open_writer(path, resume=resume, **kwargs) as writer:
        for p in positions:
            if p not in writer.finished_positions:
                writer.write(row(p))
        writer.flush()
        return set(writer.finished_positions)


def test_csv_round_trip_with_awkward_title(tmp_path):
    path = tmp_path / "out.csv"
    title = 'Rolex, "Submariner"\nsecond line'
    matches = [{"reference": "r1", "score": 0.9}]
    with open_writer(path, extra_fields=["listing_id", "title", "price"]) as writer:
        writer.write(row(0, title=title, price="10", matches=matches))
        writer.write(row(1, title="plain", score=None))
    with open(path, newline="", encoding="utf-8") as f:
        records = list(csv.reader(f))
    assert records[0] == RESULT_FIELDS + ["title", "price", "position", "matches"]
    assert len(records) == 3
    rows = read_results(path)
    assert rows[0]["title"] == title and rows[0]["matches"] == matches
    assert rows[0]["score"] == pytest.approx(0.5) and rows[0]["position"] == 0
    assert rows[0]["error"] == ""
    assert rows[1]["score"] is None and "matches" not in rows[1]


def test_jsonl_matches_round_trip_and_key_order(tmp_path):
    path = tmp_path / "out.jsonl"
    matches = [{"brand": "acme", "reference": "r1", "score": 0.91, "boxes": [[1, 2], [3, 4]]}]
    with open_writer(path, extra_fields=["title"]) as writer:
        writer.write(row(0, title="a\nb", matches=matches, ignored="x"))
        writer.write(row(1))
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert list(json.loads(first)) == RESULT_FIELDS + ["title", "position", "matches"]
    rows = read_results(path)
    assert rows[0]["matches"] == matches and rows[0]["title"] == "a\nb"
    assert "ignored" not in rows[0] and "matches" not in rows[1]
    assert rows[1]["title"] is None


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
@pytest.mark.parametrize("torn", ["partial", "newline_inside_quotes", "none"])
def test_resume_after_torn_last_line(tmp_path, suffix, torn):
    path = tmp_path / f"out{suffix}"
    write_rows(path, range(5), extra_fields=["title"])
    if torn == "partial":
        with open(path, "ab") as f:
            f.write(b'{"listing": "img5.jpg", "sta' if suffix == ".jsonl" else b"img5.jpg,L5,o")
    elif torn == "newline_inside_quotes":
        with open(path, "ab") as f:
            f.write(b'img5.jpg,L5,ok,,match,acme,ref,"0.5\n' if suffix == ".csv" else b'{"position": 5}')
    done = write_rows(path, range(10), resume=True, extra_fields=["title"])
    assert done == set(range(5))
    rows = read_results(path)
    assert sorted(r["position"] for r in rows) == list(range(10))
    assert len(rows) == 10
    assert path.read_bytes().endswith(b"\n")
    if suffix == ".jsonl":
        for line in path.read_text().splitlines():
            json.loads(line)
    else:
        with open(path, newline="") as f:
            assert len(list(csv.reader(f))) == 11


def test_resume_drops_complete_but_unparseable_last_json_line(tmp_path):
    path = tmp_path / "out.jsonl"
    write_rows(path, range(3))
    with open(path, "ab") as f:
        f.write(b'{"position": 3, "listi\n')
    assert write_rows(path, range(5), resume=True) == {0, 1, 2}
    assert [r["position"] for r in read_results(path)] == [0, 1, 2, 3, 4]


def test_resume_torn_csv_header_and_missing_file(tmp_path):
    path = tmp_path / "out.csv"
    path.write_bytes(b"listing,listing_id,sta")
    assert write_rows(path, range(2), resume=True) == set()
    assert [r["position"] for r in read_results(path)] == [0, 1]
    fresh = tmp_path / "sub" / "new.jsonl"
    assert write_rows(fresh, range(2), resume=True) == set()
    assert len(read_results(fresh)) == 2


def test_resume_csv_header_mismatch(tmp_path):
    path = tmp_path / "out.csv"
    write_rows(path, range(2), extra_fields=["title"])
    with pytest.raises(MatcherError) as err:
        open_writer(path, extra_fields=["price"], resume=True)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_resume_refuses_damage_before_last_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"position": 0}\nnot json\n{"position": 2}\n')
    with pytest.raises(MatcherError, match=r"out\.jsonl:2:1: damaged"):
        open_writer(path, resume=True)


def test_overwrite_without_resume(tmp_path):
    path = tmp_path / "out.jsonl"
    write_rows(path, range(4))
    assert write_rows(path, [7]) == set()
    assert [r["position"] for r in read_results(path)] == [7]


def test_unknown_suffix_and_missing_position(tmp_path):
    with pytest.raises(MatcherError, match=r"\.jsonl, \.csv"):
        open_writer(tmp_path / "out.xlsx")
    with open_writer(tmp_path / "out.jsonl") as writer:
        with pytest.raises(ValueError, match="position"):
            writer.write({"listing": "a.jpg"})


def test_each_write_is_one_whole_line(tmp_path):
    path = tmp_path / "out.csv"
    writer = open_writer(path)
    writer.write(row(0, listing="x\ny"))
    writer.flush()
    data = path.read_bytes()
    assert data.endswith(b"\n") and data.count(b'"') % 2 == 0
    writer.close()
    writer.close()
