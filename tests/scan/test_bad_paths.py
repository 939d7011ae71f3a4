"""Scans of bad inputs (issue #30): every path is a row with its exact status, none hangs or ends the scan.

The matcher is a fake (no CNN) except in the one test of ``Matcher.match_many`` on paths that are no file.
A read that blocks fails the test by SIGALRM instead of hanging it (see ``badimages.fail_if_blocked``).
"""
from __future__ import annotations

import json
import os

import pytest

from matcher import MatchResult, scan
from matcher.errors import ListingsError
from matcher.inputs.listings import WalkReport, iter_listings
from matcher.scan.writers import read_results
from tests.badimages import fail_if_blocked, write_bad_corpus

# Paths a manifest can name that no folder walk yields: (path as written, expected status)
IMPOSSIBLE = {
    "missing.jpg": "not_found",
    "nul\0byte.jpg": "not_found",
    "loop_a.jpg/inside.jpg": "not_found",  # a symlink loop in the middle of the path
    "x" * 300 + ".jpg": "not_found",  # file name too long
    "folder.jpg": "not_found",  # a folder
    "/dev/zero": "unreadable",  # endless: never read
    ".hidden.jpg": "ok",  # named explicitly, so not skipped
    "notes.txt": "not_an_image",
}


class FakeMatcher:
    """Matches every decoded image instantly, calling it by its size."""

    typical_prices: dict = {}

    def match_decoded(self, images):
        return [MatchResult(status="ok", brand=f"{im.size[0]}x{im.size[1]}") for im in images]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "listings"
    folder.mkdir()
    return folder, write_bad_corpus(folder)


def statuses(results) -> dict[str, str]:
    rows = read_results(results)
    found = {r["listing"]: r["status"] for r in rows}
    assert len(found) == len(rows)  # one row per listing
    return found


@pytest.mark.parametrize("workers, suffix", [(0, ".jsonl"), (0, ".csv"), (1, ".jsonl")])
def test_a_folder_scan_gives_every_entry_named_like_an_image_its_row(corpus, tmp_path, workers, suffix):
    folder, expected = corpus
    out = tmp_path / f"results{suffix}"
    with fail_if_blocked(120, [folder / "pipe.jpg"]):
        summary = scan(folder, FakeMatcher(), out, workers=workers, batch_size=4)
    assert statuses(out) == expected
    assert summary.total == len(expected) == len(list(iter_listings(folder)))
    assert sum(summary.statuses.values()) == len(expected)
    skipped = WalkReport()
    list(iter_listings(folder, skipped=skipped))
    assert skipped == WalkReport(hidden=1, not_images=1)  # .hidden.jpg, notes.txt


def test_a_manifest_scan_gives_every_path_its_row(corpus, tmp_path):
    folder, expected = corpus
    wanted = {**expected, **IMPOSSIBLE}
    manifest = folder / "listings.jsonl"
    manifest.write_text("".join(json.dumps({"path": name, "listing_id": str(i)}) + "\n"
                                for i, name in enumerate(wanted)), encoding="utf-8")
    out = tmp_path / "results.jsonl"
    with fail_if_blocked(60, [folder / "pipe.jpg"]):
        summary = scan(manifest, FakeMatcher(), out, workers=0)
    assert statuses(out) == wanted
    assert summary.total == len(wanted)
    errors = {r["listing"]: r["error"] for r in read_results(out)}
    assert "NUL byte" in errors["nul\0byte.jpg"] and "symlink loop" in errors["loop_a.jpg/inside.jpg"]
    assert "FIFO" in errors["pipe.jpg"] and "character device" in errors["/dev/zero"]
    assert all("\n" not in error for error in errors.values())


def test_nul_and_loop_lines_of_a_txt_manifest_are_rows_and_the_rest_still_scans(corpus, tmp_path):
    # they used to be a traceback mid-scan (exit 1) and an emptied results file
    folder, _ = corpus
    manifest = folder / "listings.txt"
    manifest.write_bytes(b"ok.jpg\nnul\0byte.jpg\nloop_a.jpg\nloop_a.jpg/inside.jpg\npipe.jpg\none_pixel.png\n")
    out = tmp_path / "results.csv"
    with fail_if_blocked(60, [folder / "pipe.jpg"]):
        summary = scan(manifest, FakeMatcher(), out, workers=0)
    assert statuses(out) == {"ok.jpg": "ok", "nul\0byte.jpg": "not_found", "loop_a.jpg": "not_found",
                             "loop_a.jpg/inside.jpg": "not_found", "pipe.jpg": "unreadable", "one_pixel.png": "ok"}
    assert summary.total == 6


def test_a_csv_manifest_with_an_unterminated_quote_is_an_error_at_the_quote(corpus, tmp_path):
    # leniently parsed it was 3 listings -> 2 rows and exit 0; like any bad manifest line, the error comes after
    # the rows before it
    folder, _ = corpus
    manifest = folder / "listings.csv"
    manifest.write_text('path,title\nok.jpg,fine\none_pixel.png,"a title never closed\nmultipage.tif,third\n',
                        encoding="utf-8")
    out = tmp_path / "results.jsonl"
    with pytest.raises(ListingsError, match=r"listings\.csv:3:15: bad CSV: this quote opens a field that is never"):
        scan(manifest, FakeMatcher(), out, workers=0, batch_size=1)
    assert statuses(out) == {"ok.jpg": "ok"}


def test_a_csv_manifest_with_a_nul_byte_in_a_path_scans_every_row(corpus, tmp_path):
    folder, _ = corpus
    manifest = folder / "listings.csv"
    manifest.write_bytes(b'listing_id,path\n1,ok.jpg\n2,"nul\0byte.jpg"\n3,one_pixel.png\n')
    out = tmp_path / "results.jsonl"
    scan(manifest, FakeMatcher(), out, workers=0)
    assert statuses(out) == {"ok.jpg": "ok", "nul\0byte.jpg": "not_found", "one_pixel.png": "ok"}


def test_the_python_api_on_paths_that_are_no_file(demo_matcher, tmp_path):
    # Matcher.match on a FIFO used to block forever
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    paths = [fifo, tmp_path / "dangling.jpg", tmp_path / "loop.jpg", "/dev/zero", tmp_path / "nul\0.jpg"]
    with fail_if_blocked(60, [fifo]):
        results = demo_matcher.match_many(paths)
        single = demo_matcher.match(fifo)
    assert [r.status for r in results] == ["unreadable", "not_found", "not_found", "unreadable", "not_found"]
    assert single.status == "unreadable" and "FIFO" in single.error
