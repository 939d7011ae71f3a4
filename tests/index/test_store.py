"""Index versions on disk: atomic publish, crash debris, kept versions, manifest hashes."""
import hashlib
import json

from matcher.index import store


def write_version(index_dir, payload: bytes, **extra_files):
    temp = store.new_version_folder(index_dir)
    assert temp.name.startswith(store.TEMP_PREFIX)
    (temp / "vectors.faiss").write_bytes(payload)
    store.write_references(temp / "references.csv", [store.ReferenceRecord(1, "Acme", "Acme/a.jpg", "ab" * 32)])
    for name, data in extra_files.items():
        (temp / name).write_bytes(data)
    return temp


def test_publish_switches_current_and_keeps_previous(tmp_path):
    index_dir = tmp_path / "index"
    assert store.current_version(index_dir) is None
    assert store.list_versions(index_dir) == []

    first = store.publish(index_dir, write_version(index_dir, b"one"), {"label": "first"})
    assert first.name == "v000001"
    assert store.current_version(index_dir) == first
    second = store.publish(index_dir, write_version(index_dir, b"two"), {"label": "second"})
    assert second.name == "v000002"
    assert store.current_version(index_dir) == second
    assert (index_dir / store.POINTER).read_text().strip() == "v000002"
    assert store.list_versions(index_dir) == [first, second]
    assert (first / "vectors.faiss").read_bytes() == b"one"  # the old version is intact
    assert json.loads((first / "manifest.json").read_text())["label"] == "first"
    refs = store.read_references(second / "references.csv")
    assert refs == [store.ReferenceRecord(1, "Acme", "Acme/a.jpg", "ab" * 32)]
    # no temporary debris left behind
    assert not [p for p in store.versions_dir(index_dir).iterdir() if p.name.startswith(store.TEMP_PREFIX)]
    assert not list(index_dir.glob("CURRENT.*"))


def test_crash_leftovers_are_ignored_and_collected(tmp_path):
    index_dir = tmp_path / "index"
    published = store.publish(index_dir, write_version(index_dir, b"good"), {})
    crashed = write_version(index_dir, b"half-writ")  # a build that died before publish
    stale_pointer = index_dir / "CURRENT.deadbeef.tmp"
    stale_pointer.write_text("v999999\n")

    assert store.current_version(index_dir) == published
    assert store.list_versions(index_dir) == [published]

    removed = store.collect_garbage(index_dir)
    assert crashed in removed
    assert not crashed.exists() and not stale_pointer.exists()
    assert published.is_dir() and store.current_version(index_dir) == published

    # a crash before the first publish leaves no current version at all
    fresh = tmp_path / "fresh"
    write_version(fresh, b"never published")
    assert store.current_version(fresh) is None and store.list_versions(fresh) == []
    store.collect_garbage(fresh)
    assert list(store.versions_dir(fresh).iterdir()) == []


def test_publish_after_crash_cleans_up_and_numbers_on(tmp_path):
    index_dir = tmp_path / "index"
    store.publish(index_dir, write_version(index_dir, b"one"), {})
    crashed = write_version(index_dir, b"dead")
    second = store.publish(index_dir, write_version(index_dir, b"two"), {})
    assert second.name == "v000002" and store.current_version(index_dir) == second
    assert not crashed.exists()


def test_keep_limits_old_versions_but_never_removes_current(tmp_path):
    index_dir = tmp_path / "index"
    versions = [store.publish(index_dir, write_version(index_dir, bytes([i])), {}, keep=2) for i in range(3)]
    assert [v.name for v in versions] == ["v000001", "v000002", "v000003"]
    assert store.list_versions(index_dir) == versions[1:]  # the oldest beyond keep=2 is gone
    assert store.current_version(index_dir) == versions[2]

    # numbering continues after removal
    fourth = store.publish(index_dir, write_version(index_dir, b"4"), {}, keep=10)
    assert fourth.name == "v000004"
    assert store.list_versions(index_dir) == [versions[1], versions[2], fourth]

    # roll back to the oldest version: garbage collection must keep it even though it is the oldest
    (index_dir / store.POINTER).write_text(versions[1].name + "\n")
    store.collect_garbage(index_dir, keep=2)
    assert store.current_version(index_dir) == versions[1]
    assert store.list_versions(index_dir) == [versions[1], fourth]
    store.collect_garbage(index_dir, keep=1)
    assert store.list_versions(index_dir) == [versions[1]]
    store.collect_garbage(index_dir, keep=0)
    assert store.list_versions(index_dir) == [versions[1]]
    assert (versions[1] / "vectors.faiss").read_bytes() == bytes([1])


def test_manifest_lists_every_file_with_hash_and_size(tmp_path):
    index_dir = tmp_path / "index"
    payloads = {"raw_descriptors.npy": b"\x00" * 1000, "scorer.json": b'{"threshold": 0.5}', "empty.bin": b""}
    temp = write_version(index_dir, b"vectors!", **payloads)
    written = {p.name for p in temp.iterdir()}
    version = store.publish(index_dir, temp, {"model": "fingerprint", "counts": {"references": 1}})
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"] == "fingerprint" and manifest["counts"] == {"references": 1}
    assert manifest["format_version"] == store.FORMAT_VERSION
    assert set(manifest["files"]) == written
    assert "manifest.json" not in manifest["files"]
    for name, info in manifest["files"].items():
        data = (version / name).read_bytes()
        assert info == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        assert info["sha256"] == store.file_sha256(version / name)
