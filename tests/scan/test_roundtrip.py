"""Results files round-trip any text a path or a manifest cell can hold (CR, LF, CRLF, quotes, commas, tabs,
unicode, spaces at the ends, a leading '=' or '+', undecodable file-name bytes): written by ``open_writer``, read
back by ``read_results``, ranked by ``rank_results`` (which moves rows by byte range), resumed, and reported."""
from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image
import pytest

from matcher import MatchResult, scan
from matcher.report import write_report
from matcher.report.rows import load_rows
from matcher.scan.ranking import rank_results
from matcher.scan.writers import RESULT_FIELDS, open_writer, read_results

AWKWARD = ["\r", "\n", "\r\n", "\n\r", '"', '""', ",", "\t", " ", "=", "+", "-", "@", "'", "\\", "é", "漢", "😀",
           "\u2028", "\x85", "\x0b", "\x0c", "\x1e", "\x00", "\ufeff", "\udcff", "\udc80", "a", "b", "1", ".", "/"]
TEXT = st.lists(st.sampled_from(AWKWARD) | st.text(max_size=3), max_size=6).map("".join)
EXTRA = ["title", "price", "seller\r\nname, \"quoted\"", "=cmd", " spaced "]  # manifest column names, awkward too


@st.composite
def result_rows(draw):
    rows = []
    for position in range(draw(st.integers(1, 6))):
        ok = draw(st.booleans())
        row = {name: draw(TEXT) for name in ("listing", "listing_id", "error", "brand", "reference", "explanation",
                                              "path", *EXTRA)}
        row.update(status="ok" if ok else "not_an_image", verdict=draw(st.sampled_from(["copy", "no_match", ""])),
                   score=draw(st.none() | st.floats(0, 1)), suspicion=draw(st.none() | st.floats(0, 1)),
                   position=position)
        if draw(st.booleans()):
            row["matches"] = [{"brand": draw(TEXT), "reference": draw(TEXT), "score": draw(st.floats(0, 1))}]
        rows.append(row)
    return rows


def expected(row: dict, fmt: str) -> dict:
    """What ``read_results`` gives back for ``row``: CSV has text ('' for None) except the typed columns."""
    out = {name: row.get(name) for name in RESULT_FIELDS + EXTRA}
    if fmt == "csv":
        out = {k: "" if v is None else v for k, v in out.items()}
        out.update(score=row.get("score"), suspicion=row.get("suspicion"), threshold=row.get("threshold"))
    out["position"] = row["position"]
    if "matches" in row:
        out["matches"] = row["matches"]
    return out


def ranked(rows: list[dict]) -> list[int]:
    """Positions in ``rank_results`` order: suspicion (failed rows last, unknown as 0) desc, then position."""
    key = {r["position"]: -1.0 if r["status"] != "ok" else (r["suspicion"] or 0.0) for r in rows}
    return sorted(key, key=lambda p: (-key[p], p))


def check_round_trip(path: Path, rows: list[dict]) -> None:
    fmt = path.suffix[1:]
    with open_writer(path, extra_fields=EXTRA) as writer:
        for row in rows:
            writer.write(row)
    assert read_results(path) == [expected(r, fmt) for r in rows]
    # resume: every position finished, nothing cut off
    before = path.read_bytes()
    with open_writer(path, extra_fields=EXTRA, resume=True) as writer:
        assert writer.finished_positions == {r["position"] for r in rows}
    assert path.read_bytes() == before
    # ranking moves whole rows by byte range
    assert rank_results(path) == len(rows)
    by_position = {r["position"]: expected(r, fmt) for r in rows}
    assert read_results(path) == [by_position[p] for p in ranked(rows)]
    with open_writer(path, extra_fields=EXTRA, resume=True) as writer:
        assert writer.finished_positions == set(by_position)
    # the report's reader
    report_rows = {r.position: r for r in load_rows(path)}
    for row in rows:
        got = report_rows[row["position"]]
        assert (got.listing, got.path, got.title, got.price, got.brand) == \
            tuple(row[k] for k in ("listing", "path", "title", "price", "brand"))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=result_rows())
def test_any_text_round_trips(tmp_path, suffix, rows):
    check_round_trip(tmp_path / f"results{suffix}", rows)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_each_awkward_character_round_trips(tmp_path, suffix):
    # one row per awkward text in every text column, so that a failure names the character
    rows = []
    for position, text in enumerate(AWKWARD + ["a\rb", " =1+1 ", "x\r\ny\rz\n", "\r" * 3, '"\r"', ",\r,"]):
        row = {name: text for name in ("listing", "listing_id", "error", "brand", "reference", "explanation",
                                       "path", *EXTRA)}
        row.update(status="ok", verdict="copy", score=0.5, suspicion=position / 100, position=position,
                   matches=[{"brand": text, "score": 0.5}])
        rows.append(row)
    check_round_trip(tmp_path / f"results{suffix}", rows)
    summary = write_report(tmp_path / f"results{suffix}", None, tmp_path / "report.html")
    assert (summary.total, summary.cards) == (len(rows), len(rows))


def test_csv_quotes_a_lone_carriage_return(tmp_path):
    # spreadsheets and csv readers end a record at an unquoted CR
    path = tmp_path / "results.csv"
    with open_writer(path) as writer:
        writer.write({"listing": "a\rb.jpg", "status": "ok", "position": 0})
    assert b'"a\rb.jpg"' in path.read_bytes()


def test_csv_with_unquoted_carriage_returns_from_earlier_versions_is_read(tmp_path):
    # the writer used to leave a lone CR unquoted: such a file still reads, ranks and resumes
    path = tmp_path / "results.csv"
    header = ",".join(RESULT_FIELDS + ["position", "matches"])
    lines = [header,
             "a\rb.jpg,,ok,,copy,acme,r1,0.5,0.2,,/x/a\rb.jpg,,,,,0,[]",
             '\r\rc.jpg,,ok,,copy,acme,r1,0.5,0.7,"e,\r",/x/\r\rc.jpg\r,,,,,1,[]']
    path.write_bytes(("\n".join(lines) + "\n").encode())
    rows = read_results(path)
    assert [(r["listing"], r["path"], r["explanation"]) for r in rows] == \
        [("a\rb.jpg", "/x/a\rb.jpg", ""), ("\r\rc.jpg", "/x/\r\rc.jpg\r", "e,\r")]
    with open_writer(path, resume=True) as writer:
        assert writer.finished_positions == {0, 1}
    assert rank_results(path) == 2
    assert [r["position"] for r in read_results(path)] == [1, 0]


# --- a scan of files with such names -------------------------------------------------------------------


class SizeMatcher:
    """Calls each image a copy of the brand named by its pixel width; its suspicion grows with the width."""

    typical_prices: dict = {}

    def __init__(self, index_dir: Path):
        self.index_dir = index_dir

    def match_decoded(self, images):
        return [MatchResult(status="ok", verdict="copy", brand=f"w{im.size[0]}", reference=f"w{im.size[0]}/1.jpg",
                            score=min(1.0, im.size[0] / 100)) for im in images]


FILE_NAMES = ["car\rriage.png", "line\nfeed.png", "crlf\r\n.png", 'quote"d.png', "comma,name.png", "tab\tname.png",
              "=SUM(A1).png", "+plus.png", " lead and trail .png", "ünïcødé 漢字.png", "\r.png", "\n\n.png"]


@pytest.fixture
def awkward_folder(tmp_path):
    folder = tmp_path / "listings"
    folder.mkdir()
    names = FILE_NAMES + [os.fsdecode(b"bytes-\xff\xfe.png")]  # not UTF-8: held as surrogate escapes
    for i, name in enumerate(names):
        Image.new("RGB", (20 + 5 * i, 12), (i * 20, 40, 90)).save(folder / name, format="PNG")
    (folder / "not an image\r.txt.png").write_bytes(b"plain text, not a picture")
    return folder, {name: 20 + 5 * i for i, name in enumerate(names)}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_scan_of_awkward_file_names(tmp_path, awkward_folder, suffix):
    folder, widths = awkward_folder
    out = tmp_path / f"results{suffix}"
    matcher = SizeMatcher(tmp_path / "index")
    summary = scan(folder, matcher, out, batch_size=3, workers=0)
    rows = read_results(out)
    assert summary.total == len(rows) == len(widths) + 1 and summary.kept == len(rows)
    ok = {r["listing"]: r for r in rows if r["status"] == "ok"}
    assert {name: r["brand"] for name, r in ok.items()} == {name: f"w{w}" for name, w in widths.items()}
    assert all(Path(r["path"]) == folder / r["listing"] for r in rows)
    failed = [r for r in rows if r["status"] != "ok"]
    assert [r["listing"] for r in failed] == ["not an image\r.txt.png"]
    # ranked: most suspicious first, the unreadable listing last
    suspicions = [r["suspicion"] for r in rows[:-1]]
    assert suspicions == sorted(suspicions, reverse=True) and rows[-1] is failed[0]
    # resumed: every listing is already done
    again = scan(folder, matcher, out, resume=True, batch_size=3, workers=0)
    assert (again.total, again.skipped) == (0, len(rows))
    assert read_results(out) == rows
    with open_writer(out, resume=True) as writer:
        assert writer.finished_positions == set(range(len(rows)))
    report = write_report(out, None, tmp_path / "report.html")
    assert report.total == len(rows) and report.failed == 1


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_scan_of_a_manifest_with_awkward_cells(tmp_path, awkward_folder, suffix):
    import json

    folder, widths = awkward_folder
    titles = {name: f"{name}\r\n=HYPERLINK(\"x\"),\t +1 \r" for name in FILE_NAMES}
    manifest = tmp_path / "listings.jsonl"
    with open(manifest, "w", encoding="utf-8") as f:
        for name in FILE_NAMES:
            f.write(json.dumps({"path": str(folder / name), "title": titles[name], "seller, \"x\"\r": name}) + "\n")
    out = tmp_path / f"results{suffix}"
    scan(manifest, SizeMatcher(tmp_path / "index"), out, workers=0)
    rows = read_results(out)
    assert sorted(r["position"] for r in rows) == list(range(len(FILE_NAMES)))
    for row in rows:
        name = FILE_NAMES[row["position"]]
        assert (row["title"], row["seller, \"x\"\r"], row["brand"]) == (titles[name], name, f"w{widths[name]}")
    again = scan(manifest, SizeMatcher(tmp_path / "index"), out, resume=True, workers=0)
    assert (again.total, again.skipped) == (0, len(FILE_NAMES))
