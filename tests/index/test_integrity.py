"""A damaged index is refused, never trusted: integrity checked on open, a safe CURRENT pointer, lazily read files
checked too, leases that keep garbage collection away from a version in use, and a fuzz over every file.

One small index (2 brands x 3 photos, light calibration, the real CNN) is built once for the module and copied per
test; the tests without it (store leases, the hash cache) run without the CNN.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

from PIL import Image
import numpy as np
import pytest
from typer.testing import CliRunner

from matcher.building import BuildSettings, build_index, gc_index, index_versions, remove_from_index
from matcher.cascade import run_cascade
from matcher.cli import app
from matcher.errors import IndexCorruptError
from matcher.features.embedder import Embedder
from matcher.index import store
from matcher.index.manifest import FileHashes
from matcher.index.version import IndexVersion, reference_thumbnails
from tests.conftest import DEMO, REPO

BRANDS = sorted(p.name for p in (DEMO / "catalog").iterdir() if p.is_dir())[:2]
SETTINGS = BuildSettings(copies_per_reference=1, background_listings=20)
runner = CliRunner()


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(threads=1)


@pytest.fixture(scope="module")
def base_index(tmp_path_factory, embedder) -> Path:
    root = tmp_path_factory.mktemp("integrity")
    for brand in BRANDS:
        (root / "catalog" / brand).mkdir(parents=True)
        for photo in sorted((DEMO / "catalog" / brand).glob("*.jpg"))[:3]:
            shutil.copy(photo, root / "catalog" / brand / photo.name)
    build_index(root / "catalog", root / "index", embedder=embedder, settings=SETTINGS)
    return root / "index"


@pytest.fixture
def index(base_index, tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(base_index, copy)
    return copy


@pytest.fixture(scope="module")
def listings() -> list[Image.Image]:
    """A few demo listings: copies of the indexed brands' photos and one of nothing in the catalog."""
    with open(DEMO / "listings_truth.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    chosen = [r for r in rows if r["brand"] in BRANDS][:3] + [r for r in rows if r["kind"] == "none"][:1]
    return [Image.open(DEMO / r["listing"]).convert("RGB") for r in chosen]


def version_file(index: Path, name: str) -> Path:
    return store.current_version(index) / name


def replace_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path`` (a new file renamed over it, as an editor or a copy would)."""
    temp = path.with_name(path.name + ".new")
    temp.write_bytes(data)
    os.replace(temp, path)


def flip(path: Path, positions, mask: int = 0xFF) -> None:
    data = bytearray(path.read_bytes())
    for p in positions:
        data[p] ^= mask
    replace_bytes(path, bytes(data))


def edit_manifest(index: Path, change) -> None:
    """Edit the published manifest.json in place, the seal left as it was."""
    path = version_file(index, store.MANIFEST)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def one_line_error(args, *needles) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 3 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def refused(index: Path, name: str) -> str:
    with pytest.raises(IndexCorruptError) as caught:
        IndexVersion.open(index)
    message = str(caught.value)
    assert "\n" not in message and name in message, message
    return message


# ------------------------------------------------------------------ damaged files are refused on open
def test_sixteen_flipped_bytes_in_vectors_faiss_are_refused_on_open(index):
    path = version_file(index, "vectors.faiss")
    middle = path.stat().st_size // 2  # inside the vectors: FAISS would load them and answer
    flip(path, range(middle, middle + 16))
    refused(index, "vectors.faiss")
    one_line_error(["index", "verify", index], "vectors.faiss", "sha256")


@pytest.mark.parametrize("name", ["background.npy", "raw_descriptors.npy", "likeness.npz", "local_features.npz",
                                  "hue_histograms.npz", "whitening.npz"])
def test_a_flipped_byte_in_an_array_file_is_refused_on_open(index, name):
    path = version_file(index, name)
    flip(path, [path.stat().st_size - 200], mask=0x01)
    refused(index, name)


def test_one_changed_digit_in_scorer_json_is_refused(index):
    path = version_file(index, "scorer.json")
    data = bytearray(path.read_bytes())
    at = next(i for i, c in enumerate(data) if chr(c) in "12345678")
    data[at] += 1
    replace_bytes(path, bytes(data))
    refused(index, "scorer.json")


def test_a_same_size_edit_of_references_csv_is_refused(index):
    path = version_file(index, "references.csv")
    data = path.read_bytes()
    replace_bytes(path, data.replace(b".jpg", b".JPG", 1))
    assert len(path.read_bytes()) == len(data)
    refused(index, "references.csv")


@pytest.mark.parametrize("change", [
    lambda m: m["counts"].update(references=m["counts"]["references"] + 1),
    lambda m: m["brands"].update({BRANDS[0]: 30}),
    lambda m: m.setdefault("typical_prices", {}).update({BRANDS[0]: 1.99}),
], ids=["count", "brand list", "typical price"])
def test_an_edited_manifest_is_refused_on_open_and_by_verify(index, change):
    edit_manifest(index, change)
    refused(index, "manifest.json")
    one_line_error(["index", "verify", index], "manifest.json", store.SEAL)
    one_line_error(["index", "info", index], "manifest.json")


def test_a_manifest_that_lost_its_seal_is_refused(index):
    version_file(index, store.SEAL).unlink()
    refused(index, store.SEAL)


def test_an_index_published_before_seals_opens_and_its_counts_are_still_checked(index):
    version_file(index, store.SEAL).unlink()
    edit_manifest(index, lambda m: m.pop(store.SEALED_KEY))
    assert IndexVersion.open(index).refs.brands == {b: 3 for b in BRANDS}
    result = runner.invoke(app, ["index", "verify", str(index)])
    assert result.exit_code == 0 and "no seal" in result.output
    edit_manifest(index, lambda m: m["counts"].update(references=7))
    assert "counts.references" in refused(index, "manifest.json")
    edit_manifest(index, lambda m: (m["counts"].update(references=6), m["brands"].update({BRANDS[0]: 4})))
    assert "brands" in refused(index, "manifest.json")


def test_a_file_the_manifest_does_not_list_is_not_read(index):
    edit_manifest(index, lambda m: m["files"].pop("thumbnails.npz"))
    store.write_manifest(store.current_version(index), json.loads(version_file(index, "manifest.json").read_text()))
    refused(index, "thumbnails.npz")


# ------------------------------------------------------------------ CURRENT
@pytest.mark.parametrize("pointer", ["../../elsewhere", "/tmp", "v000001/../v000001", ".."])
def test_current_must_name_a_version_folder_inside_versions(index, tmp_path, pointer):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(store.current_version(index), elsewhere)  # a loadable version outside the index
    (index / store.POINTER).write_text(pointer + "\n")
    refused(index, "CURRENT")
    one_line_error(["index", "info", index], "CURRENT")
    one_line_error(["index", "verify", index], "CURRENT")


def test_current_may_not_name_a_link_out_of_versions(index, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(store.current_version(index), elsewhere)
    (store.versions_dir(index) / "v000009").symlink_to(elsewhere)
    (index / store.POINTER).write_text("v000009\n")
    refused(index, "CURRENT")


# ------------------------------------------------------------------ thumbnails, read later
def test_damaged_thumbnails_are_refused_on_open_and_when_read(index):
    path = version_file(index, "thumbnails.npz")
    original = path.read_bytes()
    version = IndexVersion.open(index)
    flip(path, [len(original) // 2])
    with pytest.raises(IndexCorruptError, match="thumbnails.npz"):
        version.refs.load_thumbnails()  # damaged after the version was opened
    with pytest.raises(IndexCorruptError, match="thumbnails.npz"):
        reference_thumbnails(index)  # what `matcher report` reads
    refused(index, "thumbnails.npz")


def reseal_with(index: Path, name: str, data: bytes) -> None:
    """Replace a version file and make its manifest agree (a writer that saved a broken file): only parsing can
    tell, and must say IndexCorruptError naming the file."""
    folder = store.current_version(index)
    replace_bytes(folder / name, data)
    manifest = json.loads((folder / store.MANIFEST).read_text(encoding="utf-8"))
    manifest["files"][name] = {"sha256": store.file_sha256(folder / name), "bytes": len(data)}
    store.write_manifest(folder, manifest)


@pytest.mark.parametrize("name", ["thumbnails.npz", "local_features.npz", "whitening.npz", "likeness.npz",
                                  "shared_keypoints.npz", "hue_histograms.npz", "background.npy",
                                  "raw_descriptors.npy", "vectors.faiss", "references.csv", "scorer.json"])
def test_a_file_broken_when_written_is_index_corrupt_naming_it(index, name):
    data = bytearray(version_file(index, name).read_bytes())
    if name.endswith(".npz"):
        data[-60:] = bytes(60)  # the zip's central directory: BadZipFile
    else:
        data[:8] = b"\xff" * 8  # the header
    reseal_with(index, name, bytes(data))
    if name != "thumbnails.npz":
        refused(index, name)
        return
    version = IndexVersion.open(index)  # read when first needed: by the colour check, a report, an add
    with pytest.raises(IndexCorruptError, match="thumbnails.npz"):
        version.refs.load_thumbnails()
    with pytest.raises(IndexCorruptError, match="thumbnails.npz"):
        reference_thumbnails(index)


# ------------------------------------------------------------------ leases
def test_gc_keeps_a_version_held_in_this_process(index, listings, embedder):
    held = IndexVersion.open(index, embedder.fingerprint())
    before = run_cascade(held, embedder, listings)
    remove_from_index(index, [BRANDS[1]])
    assert [v["in_use"] for v in index_versions(index)] == [True, False]
    assert gc_index(index, keep=1) == [] and held.folder.is_dir()
    result = runner.invoke(app, ["index", "gc", str(index), "--keep", "1"])
    assert result.exit_code == 0 and f"{held.folder.name} (in use" in result.output, result.output
    held.refs.thumbnails.clear()
    assert len(held.refs.load_thumbnails()) == 6  # still readable
    assert run_cascade(held, embedder, listings) == before
    held.close()
    assert gc_index(index, keep=1) == [held.folder] and not held.folder.exists()


HOLDER = r"""
import sys
from matcher.index import IndexVersion
version = IndexVersion.open(sys.argv[1])
print(version.folder.name, flush=True)
sys.stdin.read()
"""


def test_gc_keeps_a_version_held_by_another_process(index):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(index)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        name = holder.stdout.readline().strip()
        old = store.versions_dir(index) / name
        remove_from_index(index, [BRANDS[1]], keep=1)  # the publish's own collection keeps it too
        assert old.is_dir() and gc_index(index, keep=1) == []
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert gc_index(index, keep=1) == [old] and store.list_versions(index) == [store.current_version(index)]


def fake_version(index_dir: Path, payload: bytes) -> Path:
    temp = store.new_version_folder(index_dir)
    (temp / "vectors.faiss").write_bytes(payload)
    return store.publish(index_dir, temp, {}, keep=10)


def test_collect_garbage_skips_leased_versions(tmp_path):
    index_dir = tmp_path / "index"
    first, second, third = (fake_version(index_dir, bytes([i])) for i in range(3))
    lease = store.Lease.take(first)
    assert lease.held and store.in_use(first) and not store.in_use(second)
    assert store.collect_garbage(index_dir, keep=1) == [second]
    assert store.list_versions(index_dir) == [first, third]
    with lease:
        assert store.list_versions(index_dir) == [first, third]
    assert not lease.held and not store.in_use(first)
    assert store.collect_garbage(index_dir, keep=1) == [first]
    assert sorted(p.name for p in third.iterdir()) == ["manifest.json", "manifest.sha256", "vectors.faiss"]


def test_published_manifest_is_sealed(tmp_path):
    folder = fake_version(tmp_path / "index", b"x")
    digest, name = (folder / store.SEAL).read_text().split()
    assert name == store.MANIFEST and digest == store.file_sha256(folder / store.MANIFEST)
    assert json.loads((folder / store.MANIFEST).read_text())[store.SEALED_KEY] == store.SEAL
    assert store.SEAL not in json.loads((folder / store.MANIFEST).read_text())["files"]


# ------------------------------------------------------------------ the hash cache
def test_file_hashes_remember_large_files_by_identity(tmp_path, monkeypatch):
    import matcher.index.manifest as manifest_module

    hashed = []
    monkeypatch.setattr(manifest_module, "file_sha256", lambda path: hashed.append(path.name) or store.file_sha256(path))
    hashes = FileHashes(always_below=100)
    small, large, fresh = tmp_path / "small.bin", tmp_path / "large.bin", tmp_path / "fresh.bin"
    small.write_bytes(b"s" * 10)
    large.write_bytes(b"L" * 1000)
    fresh.write_bytes(b"F" * 1000)
    hashes.sha256(fresh)
    hashes.sha256(fresh)  # changed within RACY_NS: a write in the same timestamp tick could keep its identity
    assert hashed == ["fresh.bin", "fresh.bin"]

    monkeypatch.setattr(manifest_module, "RACY_NS", -10**9)  # as if every file had settled long ago
    hashed.clear()
    for _ in range(3):
        assert hashes.sha256(large) == store.file_sha256(large)
        assert hashes.sha256(small) == store.file_sha256(small)
    assert hashed == ["large.bin", "small.bin", "small.bin", "small.bin"]  # small files: every time
    time.sleep(0.05)  # past the file system's timestamp tick
    with open(large, "r+b") as f:  # same size, same inode, new content
        f.write(b"M")
    assert hashes.sha256(large) == store.file_sha256(large) and hashed[-1] == "large.bin"
    replace_bytes(large, b"L" * 1000)  # another file under the same path
    assert hashes.sha256(large) == store.file_sha256(large) and hashed[-1] == "large.bin"


# ------------------------------------------------------------------ fuzz
CASES_PER_FILE = 24  # x 14 files (13 of the version and CURRENT): ~340 cases, a few seconds
def test_fuzz_every_file_of_a_version(index, listings, embedder):
    """Bytes flipped at seeded random places of every file (and CURRENT): opening is refused with
    IndexCorruptError, or gives exactly the undamaged index's results; nothing else."""
    version = IndexVersion.open(index, embedder.fingerprint())
    expected = run_cascade(version, embedder, listings)
    version.close()
    folder = store.current_version(index)
    paths = sorted(p for p in folder.iterdir() if p.is_file()) + [index / store.POINTER]
    rng = np.random.default_rng(30)
    refusals = accepted = 0
    for path in paths:
        original = path.read_bytes()
        for case in range(CASES_PER_FILE):
            data = bytearray(original)
            width = 1 if case % 2 else int(rng.integers(2, 17))
            start = int(rng.integers(0, max(1, len(data) - width)))
            for at in range(start, min(len(data), start + width)):
                data[at] ^= int(rng.integers(1, 256))
            replace_bytes(path, bytes(data))
            try:
                damaged = IndexVersion.open(index, embedder.fingerprint())
            except IndexCorruptError as exc:
                assert "\n" not in str(exc)
                refusals += 1
            else:
                assert run_cascade(damaged, embedder, listings) == expected, (path.name, start, width)
                damaged.close()
                accepted += 1
            replace_bytes(path, original)
    assert refusals + accepted == CASES_PER_FILE * len(paths)
    assert refusals >= CASES_PER_FILE * (len(paths) - 1)  # any change to a version file is refused
