"""Outputs never clobber inputs: a results file or report that would overwrite the manifest, the results or the
index is refused before anything is written (library and CLI), with one line naming both paths."""
from __future__ import annotations

import json
import os
from pathlib import Path
import shutil

from PIL import Image
import pytest
from typer.testing import CliRunner

from matcher import MatchResult, scan
from matcher.cli import app
from matcher.errors import MatcherError
from matcher.report import write_report
from matcher.scan import OutputPathError
from matcher.scan.writers import open_writer, read_results


class IndexedMatcher:
    """Matches nothing, instantly, and says which index folder it reads (as ``Matcher.index_dir``)."""

    typical_prices: dict = {}

    def __init__(self, index_dir: Path):
        self.index_dir = index_dir

    def match_decoded(self, images):
        return [MatchResult(status="ok") for _ in images]


@pytest.fixture
def inputs(tmp_path):
    """Two small photos, a CSV and a JSONL manifest naming them, and an index folder holding a file."""
    for name in ("a.png", "b.png"):
        Image.new("RGB", (24, 16), (10, 200, 30)).save(tmp_path / name)
    (tmp_path / "listings.csv").write_text("path,title\na.png,first\nb.png,second\n", encoding="utf-8")
    (tmp_path / "listings.jsonl").write_text('{"path": "a.png", "title": "first"}\n{"path": "b.png"}\n',
                                             encoding="utf-8")
    index = tmp_path / "index"
    (index / "v1").mkdir(parents=True)
    (index / "v1" / "manifest.json").write_text("{}", encoding="utf-8")
    return tmp_path


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(call, *names) -> OutputPathError:
    with pytest.raises(OutputPathError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    for name in names:
        assert str(name) in message, message
    return info.value


@pytest.mark.parametrize("manifest_name", ["listings.csv", "listings.jsonl"])
@pytest.mark.parametrize("how", ["same", "relative", "symlink", "hardlink", "dotdot"])
@pytest.mark.parametrize("resume", [False, True])
def test_scan_refuses_to_write_over_its_manifest(inputs, monkeypatch, manifest_name, how, resume):
    manifest = inputs / manifest_name
    monkeypatch.chdir(inputs)
    out = {"same": manifest, "relative": Path(manifest_name), "dotdot": inputs / "index" / ".." / manifest_name,
           "symlink": inputs / f"link{manifest.suffix}", "hardlink": inputs / f"hard{manifest.suffix}"}[how]
    if how == "symlink":
        out.symlink_to(manifest)
    elif how == "hardlink":
        os.link(manifest, out)
    before = _snapshot(inputs)
    matcher = IndexedMatcher(inputs / "index")
    _refused(lambda: scan(manifest, matcher, out, resume=resume, workers=0), out, manifest)
    _refused(lambda: scan(Path(manifest_name), matcher, out, resume=resume, workers=0), out, manifest_name)
    assert _snapshot(inputs) == before  # nothing written, nothing wiped


@pytest.mark.parametrize("where", ["index/results.jsonl", "index/v1/results.csv", "index/new/deeper/r.csv",
                                   "index_link/results.csv", "index_link/v1/manifest.jsonl"])
def test_scan_refuses_results_inside_the_index_folder(inputs, where):
    (inputs / "index_link").symlink_to(inputs / "index", target_is_directory=True)
    before = _snapshot(inputs / "index")
    _refused(lambda: scan(inputs / "listings.csv", IndexedMatcher(inputs / "index"), inputs / where, workers=0),
             inputs / where, inputs / "index")
    assert _snapshot(inputs / "index") == before
    assert not (inputs / "index" / "new").exists()


def test_scan_refuses_the_listings_folder_itself(inputs):
    folder = inputs / "photos.csv"  # a folder whose name looks like a results file
    folder.mkdir()
    shutil.copy(inputs / "a.png", folder / "a.png")
    _refused(lambda: scan(folder, IndexedMatcher(inputs / "index"), folder, workers=0), folder)
    assert (folder / "a.png").read_bytes() == (inputs / "a.png").read_bytes()


@pytest.mark.parametrize("manifest_name", ["listings.csv", "listings.jsonl"])
def test_results_beside_the_inputs_are_written(inputs, manifest_name):
    manifest = inputs / manifest_name
    before = manifest.read_bytes()
    out = inputs / f"results{manifest.suffix}"
    summary = scan(manifest, IndexedMatcher(inputs / "index"), out, workers=0)
    assert summary.total == 2 and len(read_results(out)) == 2
    assert manifest.read_bytes() == before


# --- the report ------------------------------------------------------------


def _results(folder: Path, name: str = "results.jsonl") -> Path:
    path = folder / name
    with open_writer(path, extra_fields=["title"]) as writer:
        writer.write({"listing": "a.png", "status": "ok", "verdict": "copy", "brand": "acme", "reference": "acme/1.jpg",
                      "score": 0.9, "suspicion": 0.8, "path": str(folder / "a.png"), "title": "t", "position": 0})
    return path


@pytest.mark.parametrize("name", ["results.jsonl", "results.csv"])
def test_report_refuses_to_overwrite_its_results_file(inputs, name, monkeypatch):
    results = _results(inputs, name)
    before = results.read_bytes()
    monkeypatch.chdir(inputs)
    (inputs / "alias.html").symlink_to(results)
    for out in (results, Path(name), inputs / "alias.html"):
        _refused(lambda: write_report(results, None, out), out, results)
    assert results.read_bytes() == before
    assert not list(inputs.glob("*_files"))


@pytest.mark.parametrize("out", ["index/report.html", "index/v1/report.html", "index.html"])
def test_report_refuses_to_write_into_the_index(inputs, out):
    # index.html would put its thumbnails into index_files/: only refused when that is the index
    results = _results(inputs)
    (inputs / "index_files").symlink_to(inputs / "index", target_is_directory=True)
    before = _snapshot(inputs / "index")
    _refused(lambda: write_report(results, inputs / "index", inputs / out), inputs / "index")
    assert _snapshot(inputs / "index") == before


# --- the command line (the refusal comes before the model loads: no index is needed) ---------------------


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    return result.exit_code, lines


@pytest.mark.parametrize("manifest_name", ["listings.csv", "listings.jsonl"])
def test_cli_scan_refuses_its_manifest_as_output_or_report(inputs, manifest_name):
    manifest = inputs / manifest_name
    before = _snapshot(inputs)
    for extra in (["--out", manifest], ["--out", manifest, "--resume"],
                  ["--out", inputs / "r.jsonl", "--report", manifest],
                  ["--out", inputs / "r.jsonl", "--report", inputs / "r.jsonl"],
                  ["--out", inputs / "index" / "r.jsonl"],
                  ["--out", inputs / "r.jsonl", "--report", inputs / "index" / "r.html"]):
        code, lines = _run("scan", manifest, "--index", inputs / "index", *extra)
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "refusing" in lines[0], lines
        assert _snapshot(inputs) == before


def test_cli_report_refuses_to_overwrite_its_results(inputs):
    results = _results(inputs)
    before = results.read_bytes()
    code, lines = _run("report", results, "--index", inputs / "index", "--out", results)
    assert code == 2 and len(lines) == 1 and str(results) in lines[0], lines
    assert results.read_bytes() == before
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["listing"] == "a.png"


def test_refusal_is_a_matcher_error_with_exit_code_2():
    assert issubclass(OutputPathError, MatcherError) and OutputPathError.exit_code == 2
