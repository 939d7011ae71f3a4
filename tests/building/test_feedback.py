"""Analyst feedback (#29): negative examples, known counterfeit photos, disabled references, the decision log,
and decisions files refused at file:line before anything is published.

The bad-input tests run on a manifest-only index (no CNN: the decisions are checked before the model loads); the
behaviour tests on a copy of the demo index (slow: real weights).
"""
from __future__ import annotations

import json
from pathlib import Path
import shutil

from PIL import Image
import pytest
from typer.testing import CliRunner

from matcher import Matcher, MatcherError, remove_from_index, scan
from matcher.building.feedback import feedback_index, set_enabled
from matcher.cli import app
from matcher.index import store
from matcher.scan import read_results
from tests.conftest import DEMO

NEGATIVE, FAKE = "listings/listing_13.jpg", "MP-360455"  # a real photo of Arla-Sour-Milk; a background photo
NEGATIVE_BRAND, FAKE_BRAND = "Arla-Sour-Milk", "Tropicana-Apple-Juice"


# ------------------------------------------------------------------ bad input, no CNN
@pytest.fixture
def tiny_index(tmp_path) -> Path:
    """An index folder whose published version has only a sealed manifest and references.csv: enough for the
    checks ``index feedback`` makes before it loads the model."""
    folder = tmp_path / "index" / "versions" / "v000001"
    folder.mkdir(parents=True)
    store.write_references(folder / "references.csv",
                           [store.ReferenceRecord(0, "Alpha", "Alpha/a.jpg", "0" * 64),
                            store.ReferenceRecord(1, "Beta", "Beta/b.jpg", "1" * 64)])
    data = (folder / "references.csv").read_bytes()
    import hashlib
    files = {"references.csv": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
    store.write_manifest(folder, {"format_version": store.FORMAT_VERSION, "brands": {"Alpha": 1, "Beta": 1},
                                  "files": files})
    (tmp_path / "index" / "CURRENT").write_text("v000001\n")
    return tmp_path / "index"


@pytest.fixture
def results(tmp_path) -> Path:
    image = tmp_path / "listing.jpg"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(image)
    rows = [{"listing": "shop/listing.jpg", "listing_id": "L-1", "status": "ok", "verdict": "same_product",
             "brand": "Alpha", "reference": "Alpha/a.jpg", "score": 0.9, "path": str(image), "position": 0,
             "matches": [{"brand": "Alpha", "reference": "Alpha/a.jpg", "score": 0.9}]},
            {"listing": "shop/gone.jpg", "listing_id": "L-2", "status": "not_found", "verdict": "", "brand": "",
             "reference": "", "score": None, "path": str(tmp_path / "gone.jpg"), "position": 1}]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("lines, message", [
    (["shop/listing.jpg,Alpha,false_positiv"], ":2: label 'false_positiv' is not one of"),
    (["L-1,Gamma,counterfeit"], ":2: brand 'Gamma' is not in the index"),
    (["shop/listing.jpg,Alpha,false_positive", "L-9,Alpha,counterfeit"], ":3: listing 'L-9' is not in"),
    (["L-2,Alpha,false_positive"], "results.jsonl:2: listing 'shop/gone.jpg' has status 'not_found'"),
    (["L-1,Alpha,false_positive", "shop/listing.jpg,Alpha,counterfeit"], ":3: the same image is marked"),
    (['"L-1,Alpha,counterfeit'], ":2:1: bad CSV"),
])
def test_bad_decisions_are_one_line_at_file_and_line_and_publish_nothing(tiny_index, results, tmp_path, lines,
                                                                         message):
    decisions = tmp_path / "decisions.csv"
    decisions.write_text("listing,brand,label,note\n" + "".join(line + "\n" for line in lines))
    out = CliRunner().invoke(app, ["index", "feedback", str(tiny_index), str(decisions), "--results", str(results)])
    assert out.exit_code == 2, out.output
    assert out.output.count("\n") == 1 and out.output.startswith("error: ") and message in out.output
    assert "Traceback" not in out.output
    assert store.list_versions(tiny_index) == [tiny_index / "versions" / "v000001"]


def test_results_of_another_index_are_refused(tiny_index, results, tmp_path):
    rows = read_results(results)
    rows[0]["reference"] = "Alpha/photo-of-another-catalog.jpg"
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in rows))
    decisions = tmp_path / "decisions.csv"
    decisions.write_text("listing,brand,label\nL-1,Alpha,false_positive\n")
    out = CliRunner().invoke(app, ["index", "feedback", str(tiny_index), str(decisions), "-r", str(other)])
    assert out.exit_code == 2 and "other.jsonl:1: reference 'Alpha/photo-of-another-catalog.jpg' is not in this" \
        in out.output


def test_unknown_reference_to_disable_is_one_line(tiny_index):
    out = CliRunner().invoke(app, ["index", "disable", str(tiny_index), "Alpha/b.jpg"])
    assert out.exit_code == 1 and out.output.count("\n") == 1 and "no reference 'Alpha/b.jpg'" in out.output


# ------------------------------------------------------------------ behaviour on the demo index (real CNN)
def edited(source: Path, out: Path) -> dict[str, Path]:
    """Near-duplicates of a listing: re-encoded, resized, lightly cropped."""
    im = Image.open(source).convert("RGB")
    w, h = im.size
    made = {"reencoded": im, "resized": im.resize((int(w * 0.6), int(h * 0.6))),
            "cropped": im.crop((int(0.05 * w), int(0.05 * h), int(0.93 * w), int(0.95 * h)))}
    for name, image in made.items():
        image.save(out / f"{source.stem}_{name}.jpg", quality=65)
    return {name: out / f"{source.stem}_{name}.jpg" for name in made}


@pytest.fixture(scope="module")
def fed(demo_index, tmp_path_factory):
    """(index copy before feedback, after it, the scan's results rows, variants folder)."""
    root = tmp_path_factory.mktemp("feedback")
    before, after = root / "before", root / "after"
    shutil.copytree(demo_index, before)
    results = root / "demo.jsonl"
    scan(DEMO / "listings.csv", Matcher.open(before), results)
    shutil.copytree(before, after)
    decisions = root / "decisions.csv"
    decisions.write_text(f"listing,brand,label,note\n{NEGATIVE},{NEGATIVE_BRAND},false_positive,look-alike\n"
                         f"{FAKE},{FAKE_BRAND},counterfeit,confirmed\n")
    feedback_index(after, decisions, read_results(results), results)
    variants = root / "variants"
    variants.mkdir()
    return before, after, read_results(results), variants


def test_a_false_positive_and_its_near_duplicates_stop_matching_its_brand(fed):
    before, after, rows, variants = fed
    images = [DEMO / NEGATIVE, *edited(DEMO / NEGATIVE, variants).values()]
    was, now = Matcher.open(before).match_many(images), Matcher.open(after).match_many(images)
    assert all(r.brand == NEGATIVE_BRAND and r.verdict != "no_match" for r in was)
    for r in now:
        assert NEGATIVE_BRAND not in {m.brand for m in r.matches}
        assert f"like a listing marked not {NEGATIVE_BRAND} on " in r.note


def test_other_listings_are_unaffected(fed):
    before, after, rows, _ = fed
    listings = [Path(r["path"]) for r in rows if r["status"] == "ok" and r["listing"] not in (NEGATIVE,)
                and r["listing_id"] != FAKE]
    was, now = Matcher.open(before).match_many(listings), Matcher.open(after).match_many(listings)
    assert [(r.verdict, r.brand, r.reference) for r in now] == [(r.verdict, r.brand, r.reference) for r in was]
    assert any(r.brand == NEGATIVE_BRAND and r.verdict == "copy" for r in now)


def test_edited_copies_of_a_known_fake_are_flagged_copy_of_it(fed):
    before, after, rows, variants = fed
    source = Path(next(r["path"] for r in rows if r["listing_id"] == FAKE))
    copies = list(edited(source, variants).values())
    assert all(r.verdict == "no_match" for r in Matcher.open(before).match_many(copies))
    for r in Matcher.open(after).match_many(copies):
        assert (r.verdict, r.brand) == ("copy", FAKE_BRAND)
        assert r.reference == f"known-fakes/{FAKE_BRAND}/{source.name}"
        assert "copy of a known counterfeit photo marked on " in r.note


def test_known_fakes_are_not_counted_as_genuine_references(fed):
    before, after, _, _ = fed
    old = json.loads((store.current_version(before) / "manifest.json").read_text())
    new = json.loads((store.current_version(after) / "manifest.json").read_text())
    assert new["brands"] == old["brands"] and new["counts"]["references"] == old["counts"]["references"]
    assert new["feedback"]["known_fakes"] == {FAKE_BRAND: 1} and new["feedback"]["negatives"] == {NEGATIVE_BRAND: 1}
    out = CliRunner().invoke(app, ["index", "info", str(after), "--references"])
    assert f"known-fakes/{FAKE_BRAND}/" in out.output and "(known fake)" in out.output
    assert CliRunner().invoke(app, ["index", "verify", str(after)]).exit_code == 0


def test_decision_log_is_appended_and_carried_by_later_versions(fed, tmp_path):
    _, after, _, _ = fed
    index = tmp_path / "index"
    shutil.copytree(after, index)
    log = (store.current_version(index) / "decisions.jsonl").read_text().splitlines()
    first = [json.loads(line) for line in log]
    assert [d["label"] for d in first] == ["false_positive", "counterfeit"]
    assert all(d["by"] and d["time"] and d["changed"] == "v000001" and d["version"] == "v000002" for d in first)
    set_enabled(index, ["Alpro-Fresh-Soy-Milk/Alpro-Fresh-Soy-Milk_002.jpg"], False)
    remove_from_index(index, ["Oatly-Natural-Oatghurt"])
    later = (store.current_version(index) / "decisions.jsonl").read_text().splitlines()
    assert later[:2] == log and json.loads(later[2])["op"] == "disable" and len(later) == 3


def test_a_disabled_reference_stops_matching_until_enabled(fed, tmp_path):
    _, after, rows, _ = fed
    index = tmp_path / "index"
    shutil.copytree(after, index)
    row = next(r for r in rows if r["verdict"] == "copy" and r["brand"] != NEGATIVE_BRAND)
    set_enabled(index, [row["reference"]], False)
    matcher = Matcher.open(index)
    assert row["reference"] not in {m.reference for m in matcher.match(row["path"]).matches}
    set_enabled(index, [row["reference"]], True)
    assert matcher.reload() and matcher.match(row["path"]).reference == row["reference"]
    with pytest.raises(MatcherError, match="no reference 'Nope/x.jpg'"):
        set_enabled(index, ["Nope/x.jpg"], False)


def test_a_feedback_run_failing_mid_way_leaves_the_previous_version_serving(fed, tmp_path, monkeypatch):
    before, _, rows, _ = fed
    index = tmp_path / "index"
    shutil.copytree(before, index)
    decisions = tmp_path / "decisions.csv"
    decisions.write_text(f"listing,brand,label\n{NEGATIVE},{NEGATIVE_BRAND},false_positive\n")
    from matcher.index.feedback_bank import FeedbackBank

    def broken(self, folder):
        (folder / "feedback.json").write_text("{half")
        raise OSError("disk full")
    monkeypatch.setattr(FeedbackBank, "save_into", broken)
    published = store.current_version(index)
    with pytest.raises(OSError):
        feedback_index(index, decisions, rows, tmp_path / "demo.jsonl")
    assert store.current_version(index) == published and store.list_versions(index) == [published]
    assert not list((index / "versions").glob(".tmp-*"))
    assert Matcher.open(index).match(DEMO / NEGATIVE).brand == NEGATIVE_BRAND


def test_kill_9_during_a_feedback_run_leaves_the_previous_version_serving(fed, tmp_path):
    """A feedback run killed with SIGKILL after writing its version's files, after sealing it, or after renaming it
    into versions/ (before CURRENT switches): the previous version still serves, its decision log unchanged, and
    a second run publishes the decisions."""
    from tests.building.test_lifecycle import kill_during

    before, _, rows, _ = fed
    index = tmp_path / "index"
    shutil.copytree(before, index)
    results = tmp_path / "demo.jsonl"
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    decisions = tmp_path / "decisions.csv"
    decisions.write_text(f"listing,brand,label\n{NEGATIVE},{NEGATIVE_BRAND},false_positive\n")
    published = store.current_version(index)
    log_before = sorted(p.name for p in published.iterdir())
    for point in ("publish", "rename", "replace"):
        kill_during("feedback", index, decisions, point, tmp_path / f"feedback-{point}.log", extra=[results])
        assert store.current_version(index) == published, point
        assert sorted(p.name for p in published.iterdir()) == log_before
        assert Matcher.open(index).match(DEMO / NEGATIVE).brand == NEGATIVE_BRAND
    after = feedback_index(index, decisions, rows, results)  # the lock died with the killed writer
    assert store.current_version(index) == after != published
    assert Matcher.open(index).match(DEMO / NEGATIVE).brand != NEGATIVE_BRAND
