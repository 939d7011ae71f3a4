"""Index lifecycle: add / remove brands without a rebuild, versions, reload, gc, crash safety, CLI.

One small index (2 brands x 3 photos, light calibration) is built once for the module and copied per test.
"""
from __future__ import annotations

import json
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import threading
import time

from PIL import Image
import numpy as np
import pytest
from typer.testing import CliRunner

from matcher import (CatalogError, IndexMismatchError, Matcher, MatcherError, add_to_index, gc_index, index_versions,
                     remove_from_index)
from matcher.building.augment import copy_edit, finish
from matcher.building.build import BuildSettings, build_index
from matcher.cli import app
from matcher.features.embedder import Embedder
from matcher.index import store
from matcher.index.manifest import check_files
from matcher.index.store import writer_lock
from matcher.index.version import IndexVersion
from tests.conftest import DEMO, REPO

BRANDS = sorted(p.name for p in (DEMO / "catalog").iterdir() if p.is_dir())
A, B, C = BRANDS[0], BRANDS[1], "Tropicana-Apple-Juice"
SETTINGS = BuildSettings(copies_per_reference=1, background_listings=20)
EDITS_PER_REFERENCE = SETTINGS.edits_per_added_reference


def make_catalog(root: Path, brands, photos=slice(0, 3)) -> Path:
    for brand in brands:
        (root / brand).mkdir(parents=True)
        for photo in sorted((DEMO / "catalog" / brand).glob("*.jpg"))[photos]:
            shutil.copy(photo, root / brand / photo.name)
    return root


class CountingEmbedder:
    """The real embedder, counting the images ``describe`` is asked for."""

    def __init__(self, embedder: Embedder):
        self.inner, self.described = embedder, 0

    def fingerprint(self) -> dict:
        return self.inner.fingerprint()

    def describe(self, images):
        self.described += len(images)
        return self.inner.describe(images)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(threads=1)


@pytest.fixture(scope="module")
def base_index(tmp_path_factory, embedder) -> Path:
    root = tmp_path_factory.mktemp("lifecycle")
    out = root / "index"
    build_index(make_catalog(root / "catalog", [A, B]), out, embedder=embedder, settings=SETTINGS)
    return out


@pytest.fixture
def index(base_index, tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(base_index, copy)
    return copy


@pytest.fixture
def catalog_c(tmp_path) -> Path:
    return make_catalog(tmp_path / "catalog_c", [C])


def brands_of(index_dir: Path) -> dict:
    return IndexVersion.open(index_dir).refs.brands


def test_onboard_a_brand_then_remove_it(index, catalog_c, embedder):
    photo = Image.open(sorted((catalog_c / C).glob("*.jpg"))[0]).convert("RGB")
    w, h = photo.size
    listings = [copy_edit(photo, np.random.default_rng(3))[0],
                finish(photo.crop((int(0.1 * w), int(0.1 * h), int(0.9 * w), int(0.85 * h))))]
    matcher = Matcher(index, IndexVersion.open(index, embedder.fingerprint()), embedder)
    for result in matcher.match_many(listings):
        assert result.ok and all(m.brand != C for m in result.matches)

    add_to_index(index, catalog_c, embedder=embedder)
    assert matcher.reload() is True and matcher.reload() is False
    for result in matcher.match_many(listings):
        assert (result.brand, result.verdict) == (C, "copy"), result
        assert result.reference.startswith(f"{C}/")

    remove_from_index(index, [C])
    assert matcher.reload() is True
    for result in matcher.match_many(listings):
        assert all(m.brand != C for m in result.matches)
    assert brands_of(index) == {A: 3, B: 3}


def test_approximate_index_kind_through_add_remove_and_reload(index, catalog_c, embedder, monkeypatch):
    """Past the flat threshold add/remove publish an IVF index that loads, matches and keeps stable ids."""
    import matcher.index.vectors

    monkeypatch.setattr(matcher.index.vectors, "FLAT_MAX", 0)  # every rebuilt structure is approximate
    photo = Image.open(sorted((catalog_c / C).glob("*.jpg"))[0]).convert("RGB")
    listing = copy_edit(photo, np.random.default_rng(3))[0]
    add_to_index(index, catalog_c, embedder=embedder)
    version = IndexVersion.open(index, embedder.fingerprint())
    assert version.manifest["index_type"].startswith("ivf") and version.refs.index.approximate
    assert version.refs.index.kind == version.manifest["index_type"]
    assert sorted(int(i) for i in version.refs.index.reconstruct_all()[0]) == [r.id for r in version.refs.references]
    result = Matcher(index, version, embedder).match(listing)
    assert (result.brand, result.verdict) == (C, "copy"), result
    kept = {r.path: r.id for r in version.refs.references if r.brand != A}
    remove_from_index(index, [A])
    after = IndexVersion.open(index, embedder.fingerprint())
    assert after.refs.index.approximate and {r.path: r.id for r in after.refs.references} == kept
    _, found = after.refs.index.search(after.refs.vectors, 3)
    assert not np.isin(found, [r.id for r in version.refs.references if r.brand == A]).any()


def test_add_embeds_only_new_photos_with_stable_ids(index, catalog_c, embedder, tmp_path):
    """Each new photo is embedded with its EDITS_PER_REFERENCE synthetic listings (the gate's likeness set,
    which follows the references through add and remove); photos already indexed cost nothing."""
    counting = CountingEmbedder(embedder)
    before = IndexVersion.open(index)
    per_photo = 1 + EDITS_PER_REFERENCE
    add_to_index(index, catalog_c, embedder=counting)
    v = IndexVersion.open(index)
    assert counting.described == 3 * per_photo
    likeness_of = lambda version: sorted(set(version.refs.likeness.sources.tolist()))  # noqa: E731
    assert likeness_of(v) == likeness_of(before) + [6, 7, 8]
    assert (v.refs.likeness.sources >= 6).sum() == 3 * EDITS_PER_REFERENCE
    assert np.array_equal(v.refs.likeness.vectors[v.refs.likeness.sources < 6], before.refs.likeness.vectors)
    assert [r.id for r in v.refs.references if r.brand == C] == [6, 7, 8]
    assert np.array_equal(v.refs.vectors[:6], before.refs.vectors)  # untouched references keep their vectors

    # re-adding the same photos: nothing embedded, stored once, same ids
    add_to_index(index, catalog_c, embedder=counting)
    again = IndexVersion.open(index)
    assert counting.described == 3 * per_photo and again.refs.references == v.refs.references

    # replacing brand A: 2 of its photos kept (ids kept), 1 dropped, 1 new photo embedded
    a_ids = {r.path: r.id for r in v.refs.references if r.brand == A}
    replacement = make_catalog(tmp_path / "catalog_a", [A], slice(1, 4))
    add_to_index(index, replacement, embedder=counting)
    replaced = IndexVersion.open(index)
    assert counting.described == 4 * per_photo
    new_a = {r.path: r.id for r in replaced.refs.references if r.brand == A}
    assert len(new_a) == 3 and min(a_ids.values()) not in new_a.values()
    assert all(new_a[p] == i for p, i in a_ids.items() if p in new_a)
    assert max(new_a.values()) == 9 and len(replaced.refs.local_features) == len(replaced.refs.references) == 9

    # removed ids are never reused
    remove_from_index(index, C)
    assert likeness_of(IndexVersion.open(index)) == sorted([*new_a.values(), 3, 4, 5])
    add_to_index(index, catalog_c, embedder=counting)
    assert [r.id for r in IndexVersion.open(index).refs.references if r.brand == C] == [10, 11, 12]
    assert counting.described == 7 * per_photo


def test_photo_of_another_indexed_brand_is_skipped(index, catalog_c, embedder, tmp_path):
    counting = CountingEmbedder(embedder)
    a_photo = sorted((DEMO / "catalog" / A).glob("*.jpg"))[0]
    only_dupes = tmp_path / "dupes"
    (only_dupes / "Copycat").mkdir(parents=True)
    shutil.copy(a_photo, only_dupes / "Copycat" / "stolen.jpg")
    with pytest.raises(CatalogError, match="Copycat") as error:
        add_to_index(index, only_dupes, embedder=counting)
    assert "\n" not in str(error.value) and counting.described == 0
    shutil.copytree(catalog_c / C, only_dupes / "Copycat", dirs_exist_ok=True)
    published = add_to_index(index, only_dupes, embedder=counting)
    assert brands_of(index) == {A: 3, B: 3, "Copycat": 3} and counting.described == 3 * (1 + EDITS_PER_REFERENCE)
    skipped = json.loads((published / "manifest.json").read_text())["skipped_references"]
    assert [(s["path"], s["status"]) for s in skipped] == [("Copycat/stolen.jpg", "duplicate")]


def test_whitening_background_and_scorer_are_carried_over(index, catalog_c, embedder):
    def fixed_files(folder):
        files = json.loads((folder / "manifest.json").read_text())["files"]
        return {name: files[name]["sha256"] for name in ("whitening.npz", "background.npy", "scorer.json")}

    built = store.current_version(index)
    added = add_to_index(index, catalog_c, embedder=embedder)
    removed = remove_from_index(index, [A])
    assert fixed_files(built) == fixed_files(added) == fixed_files(removed)
    manifest = json.loads((removed / "manifest.json").read_text())
    old = json.loads((built / "manifest.json").read_text())
    for key in ("build_settings", "calibration", "catalog", "fingerprint"):
        assert manifest[key] == old[key]
    assert [(h["op"], h["brands"]) for h in manifest["history"]] == [("build", [A, B]), ("add", [C]), ("remove", [A])]
    assert manifest["brands"] == {B: 3, C: 3} and manifest["next_id"] == 9


def test_every_operation_publishes_a_version_and_old_ones_are_kept_up_to_the_limit(index, catalog_c, embedder):
    matcher = Matcher(index, IndexVersion.open(index), embedder)
    names = [store.current_version(index).name]
    for op in (lambda: add_to_index(index, catalog_c, embedder=embedder), lambda: remove_from_index(index, C),
               lambda: add_to_index(index, catalog_c, embedder=embedder)):
        published = op()
        assert store.current_version(index) == published and published.name not in names
        names.append(published.name)
        assert matcher.reload() and matcher.version.folder.name == published.name
    assert [p.name for p in store.list_versions(index)] == names[-3:]  # keep_versions = 3
    info = index_versions(index)
    assert [v["current"] for v in info] == [False, False, True] and info[-1]["op"] == "add"
    assert IndexVersion.open(index).refs.brands == {A: 3, B: 3, C: 3}
    assert len(gc_index(index, keep=1)) == 2 and store.list_versions(index) == [store.current_version(index)]


# A writer in a subprocess that stops at a chosen point (it prints the point's name) so the test can kill -9 it
# there; "timed" kills it a delay after it printed "ready". op "feedback" reads catalog_dir as the decisions file
# and a fifth argument as the results file (tests/building/test_feedback.py).
CRASH_SCRIPT = r"""
import os, sys, time
op, index_dir, catalog_dir, point = sys.argv[1:5]
from matcher.index import store
from matcher.building import BuildSettings, add_to_index, build_index
from matcher.features import Embedder

embedder = Embedder(threads=1)

def stop_at(name, fn):
    def stopped(*args, **kwargs):
        print(name, flush=True)
        time.sleep(300)
        return fn(*args, **kwargs)
    return stopped

if point == "publish":    # version files written to the temp folder, no manifest yet
    store.publish = stop_at(point, store.publish)
elif point == "rename":   # manifest written and fsynced, temp folder not yet renamed into versions/
    os.rename = stop_at(point, os.rename)
elif point == "replace":  # version renamed into versions/, CURRENT not yet switched to it
    os.replace = stop_at(point, os.replace)
print("ready", flush=True)
if op == "add":
    add_to_index(index_dir, catalog_dir, embedder=embedder)
elif op == "feedback":
    from matcher.building.feedback import feedback_index
    from matcher.scan import read_results
    feedback_index(index_dir, catalog_dir, read_results(sys.argv[5]), sys.argv[5], embedder=embedder)
else:
    build_index(catalog_dir, index_dir, embedder=embedder,
                settings=BuildSettings(copies_per_reference=1, background_listings=20))
print("finished", flush=True)
"""


def kill_during(op, index_dir, catalog_dir, point, log: Path, delay=0.0, extra=()) -> None:
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, op, str(index_dir), str(catalog_dir), point,
                                 *map(str, extra)], stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        marker = "ready" if point == "timed" else point
        for line in proc.stdout:
            if line.strip() == marker:
                break
        else:
            pytest.fail(f"{op} never reached {marker}: {log.read_text()[-2000:]}")
        time.sleep(delay)
        assert proc.poll() is None, f"{op} finished before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        watchdog.cancel()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def test_kill_9_during_build_or_add_leaves_the_published_version(index, catalog_c, embedder, tmp_path):
    published = store.current_version(index)
    references = IndexVersion.open(index).refs.references
    for op, point, delay in [("build", "timed", 1.5), ("add", "publish", 0), ("add", "rename", 0),
                             ("add", "replace", 0)]:
        source = catalog_c if op == "add" else make_catalog(tmp_path / "catalog_abc", [A, B, C])
        kill_during(op, index, source, point, tmp_path / f"{op}-{point}.log", delay)
        assert store.current_version(index) == published, (op, point)
        version = IndexVersion.open(index, embedder.fingerprint())
        check_files(version.folder, version.manifest, hashes=True)
        assert version.refs.references == references
    # the kills left debris: temp folders, a renamed but never published version, a CURRENT temp file
    assert len(list(store.versions_dir(index).glob(store.TEMP_PREFIX + "*"))) == 2
    orphan = store.list_versions(index)[-1]
    assert orphan.name > published.name and list(index.glob("CURRENT.*.tmp"))

    after = add_to_index(index, catalog_c, embedder=embedder)  # the lock died with the killed writer
    assert store.current_version(index) == after and after.name > orphan.name
    assert IndexVersion.open(index).refs.brands == {A: 3, B: 3, C: 3}
    assert not list(store.versions_dir(index).glob(store.TEMP_PREFIX + "*")) and not list(index.glob("CURRENT.*.tmp"))


def test_remove_errors_are_one_line_and_change_nothing(index):
    published = store.current_version(index)
    with pytest.raises(MatcherError) as unknown:
        remove_from_index(index, ["Nope-Brand"])
    message = str(unknown.value)
    assert "\n" not in message and "Nope-Brand" in message and A in message and B in message
    with pytest.raises(MatcherError, match="at least one reference") as everything:
        remove_from_index(index, [A, B])
    assert "\n" not in str(everything.value)
    assert store.current_version(index) == published


def test_add_refuses_an_index_built_by_another_model(index, catalog_c, embedder):
    folder = store.current_version(index)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["fingerprint"]["weights_sha256"] = "0" * 64
    store.write_manifest(folder, manifest)  # as another matcher would have sealed it
    with pytest.raises(IndexMismatchError, match="weights_sha256"):
        add_to_index(index, catalog_c, embedder=embedder)
    remove_from_index(index, [A])  # remove needs no embedder, so no fingerprint check
    assert brands_of(index) == {B: 3}


def test_a_second_writer_is_refused(index, catalog_c, embedder):
    with writer_lock(index):
        with pytest.raises(MatcherError, match="another build/add/remove/gc"):
            remove_from_index(index, [A])
        with pytest.raises(MatcherError, match="another build/add/remove/gc"):
            add_to_index(index, catalog_c, embedder=embedder)
    remove_from_index(index, [A])


runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.mark.parametrize("command", ["add", "remove", "gc"])
def test_lifecycle_commands_have_help(command):
    code, output = run("index", command, "--help")
    assert code == 0 and "Usage" in output


def test_cli_add_remove_gc(index, catalog_c):
    code, out = run("index", "add", index, catalog_c, "--threads", "1")
    assert code == 0, out
    assert out.strip().splitlines()[-1] == str(store.current_version(index))
    assert brands_of(index) == {A: 3, B: 3, C: 3}
    code, out = run("index", "remove", index, C, A)
    assert code == 0, out
    assert brands_of(index) == {B: 3}
    code, out = run("index", "remove", index, "Nope-Brand")
    lines = [line for line in out.strip().splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error:") and "Nope-Brand" in lines[0]
    code, out = run("index", "gc", index, "--keep", "1")
    assert code == 0 and "kept 1 version(s)" in out, out
    assert store.list_versions(index) == [store.current_version(index)]
    code, out = run("index", "add", index / "missing", catalog_c)
    assert code != 0 and out.startswith("error:") and "missing" in out


def stored_hues_match_the_thumbnails(index) -> bool:
    """Whether the published version stores the hue histogram of each reference's thumbnail, and no other."""
    from matcher.features.colour import hue_histogram, thumbnail_pixels
    version = IndexVersion.open(index)
    thumbnails = version.refs.load_thumbnails()
    if set(version.refs.hue_histograms) != {r.id for r in version.refs.references}:
        return False
    fresh = [hue_histogram(thumbnail_pixels(thumbnails[r.id])) for r in version.refs.references]
    return all((a is None and b is None) or (a is not None and b is not None and np.allclose(a, b))
               for a, b in zip(fresh, version.refs.reference_hues([r.id for r in version.refs.references])))


def test_typical_prices_and_thumbnails_follow_add_and_remove(index, catalog_c, embedder):
    from matcher.index.manifest import published_manifest
    from matcher.index.version import reference_thumbnails

    (catalog_c / "brands.csv").write_text(f"brand,typical_price\n{C},3.49\n", encoding="utf-8")
    add_to_index(index, catalog_c, embedder=embedder)
    _, manifest = published_manifest(index)
    assert manifest["typical_prices"] == {C: pytest.approx(3.49)}
    thumbnails = reference_thumbnails(index)
    assert {path.split("/")[0] for path in thumbnails} == {A, B, C} and len(thumbnails) == 9
    assert stored_hues_match_the_thumbnails(index)  # the colour check reads them instead of decoding thumbnails

    remove_from_index(index, [C])
    _, manifest = published_manifest(index)
    assert manifest["typical_prices"] == {}
    assert {path.split("/")[0] for path in reference_thumbnails(index)} == {A, B}
    assert stored_hues_match_the_thumbnails(index)

    (catalog_c / "brands.csv").write_text("brand,typical_price\nNot-A-Brand,3.49\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"brands\.csv:2:1: brand 'Not-A-Brand' has no folder"):
        add_to_index(index, catalog_c, embedder=embedder)
