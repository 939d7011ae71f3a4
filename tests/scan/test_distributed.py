"""The Ray engine (matcher/scan/distributed.py) on a local Ray instance: the local scan's rows, resume by shard
after a kill, a dying actor costs one row, and bad input is refused before any cluster work."""
from __future__ import annotations

from collections import Counter
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray", reason="the Ray engine's tests need the [ray] extra (make install pulls it)")

from matcher import rescan, scan  # noqa: E402
from matcher.errors import IndexNotFoundError, ListingsError, MatcherError  # noqa: E402
from matcher.scan.distributed import scan_on_ray  # noqa: E402
from matcher.scan.ray_stages import CascadeStage  # noqa: E402
from matcher.scan.writers import read_results  # noqa: E402
from tests.conftest import DEMO, REPO  # noqa: E402

SCORE_TOLERANCE = 2.5e-6  # scores are rounded to 6 decimals; an actor's CNN on other threads may flip the last digit


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance for every Ray test (they all live in this module): 2 CPUs, object store capped at
    256 MB; stopped after them, so the rest of the session does not carry it."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, object_store_memory=256 * 1024 * 1024, include_dashboard=False,
                 log_to_driver=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed_listings(tmp_path_factory) -> Path:
    """Listings with good images, byte-identical duplicates and bad files (empty, text, truncated JPEG)."""
    folder = tmp_path_factory.mktemp("mixed")
    photos = sorted((DEMO / "listings").glob("listing_*.jpg"))[:9]
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    shutil.copy(photos[0], folder / "repost_of_01.jpg")
    shutil.copy(photos[3], folder / "repost_of_04.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image", encoding="utf-8")
    (folder / "cut.jpg").write_bytes(photos[1].read_bytes()[:300])
    return folder


def by_position(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: row["position"])


def assert_same_rows(sharded: list[dict], local: list[dict]) -> None:
    """Equal rows, order aside; scores (and match scores) equal to SCORE_TOLERANCE."""
    assert len(sharded) == len(local)
    for got, want in zip(by_position(sharded), by_position(local)):
        for name in ("score", "suspicion", "threshold"):
            if want.get(name) is None:
                assert got.get(name) is None, (name, got)
            else:
                assert got[name] == pytest.approx(want[name], abs=SCORE_TOLERANCE), (name, got["listing"])
        assert [(m["brand"], m["reference"]) for m in got["matches"]] == \
               [(m["brand"], m["reference"]) for m in want["matches"]]
        for a, b in zip(got["matches"], want["matches"]):
            assert a["score"] == pytest.approx(b["score"], abs=SCORE_TOLERANCE)
        plain = lambda row: {k: v for k, v in row.items() if k not in ("score", "suspicion", "threshold", "matches")}
        assert plain(got) == plain(want)


def test_the_ray_scan_gives_the_local_scans_rows(ray_cluster, demo_index, demo_matcher, mixed_listings, tmp_path):
    local = tmp_path / "local.jsonl"
    scan(mixed_listings, demo_matcher, local, workers=0)
    summary = scan_on_ray(mixed_listings, demo_index, tmp_path / "sharded", shard_size=4, batch_size=3)
    parts = sorted(p.name for p in (tmp_path / "sharded").glob("part-*.parquet"))
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet", "part-00003.parquet"]
    local_rows = read_results(local)
    assert summary.rows == 14 and summary.statuses == Counter(row["status"] for row in local_rows)
    assert {"not_an_image", "empty", "ok"} <= set(summary.statuses)
    success = json.loads((tmp_path / "sharded" / "_SUCCESS").read_text())
    assert (success["listings"], success["shards"]) == (14, 4)
    assert_same_rows(read_results(tmp_path / "sharded"), local_rows)
    # its folder re-scans like a results file: against the same version, every row is kept as it was
    again = rescan(tmp_path / "sharded", demo_matcher, tmp_path / "rescanned.jsonl")
    assert again.rechecked == 0 and again.carried + again.failed == 14
    verdicts = {(r["listing"], r["status"], r["verdict"], r["brand"]) for r in local_rows}
    assert {(r["listing"], r["status"], r["verdict"], r["brand"])
            for r in read_results(tmp_path / "rescanned.jsonl")} == verdicts


def test_a_parquet_manifest_scans_the_same_on_both_engines(ray_cluster, demo_index, demo_matcher, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    paths = [f"listings/{p.name}" for p in sorted((DEMO / "listings").glob("*.jpg"))[:6]]
    shutil.copytree(DEMO / "listings", tmp_path / "listings")
    manifest = tmp_path / "listings.parquet"
    pq.write_table(pa.table({"path": paths, "listing_id": [f"L{i}" for i in range(6)],
                             "price": [1.5, None, 2.0, 3.25, None, 9.0], "seller": ["a", "b"] * 3}), manifest)
    scan(manifest, demo_matcher, tmp_path / "local.parquet", workers=0)
    scan_on_ray(manifest, demo_index, tmp_path / "sharded", shard_size=4)
    local = read_results(tmp_path / "local.parquet")
    assert [row["listing_id"] for row in by_position(local)] == [f"L{i}" for i in range(6)]
    assert {row["price"] for row in local} == {"1.5", "", "2.0", "3.25", "9.0"}
    assert_same_rows(read_results(tmp_path / "sharded"), local)


KILLED_AFTER_SHARDS = 2
# The driver, SIGKILLed by itself right after its second part file: polling from outside raced with drivers that
# write all seven shards within one poll interval (the blocks often come back together).
DRIVER_KILLED_MID_SCAN = f"""
import os, signal, sys
from matcher.cli import main
from matcher.scan import shard_writer

write = shard_writer.ShardWriter.write
def write_then_die(self, shard, tables):
    write(self, shard, tables)
    if self.written == {KILLED_AFTER_SHARDS}:
        os.kill(os.getpid(), signal.SIGKILL)
shard_writer.ShardWriter.write = write_then_die
sys.argv[0] = "matcher"
main()
"""


def test_a_killed_ray_scan_resumes_to_one_row_per_input(ray_cluster, demo_index, mixed_listings, tmp_path):
    out = tmp_path / "sharded"
    command = [sys.executable, "-c", DRIVER_KILLED_MID_SCAN, "scan", str(mixed_listings), "--index",
               str(demo_index), "--out", str(out), "--engine", "ray", "--address", ray_cluster, "--shard-size", "2",
               "--batch-size", "2"]
    driver = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    assert driver.returncode == -signal.SIGKILL, driver.stderr.decode()
    finished = sorted(out.glob("part-*.parquet"))
    assert len(finished) == KILLED_AFTER_SHARDS, driver.stderr.decode()
    assert not (out / "_SUCCESS").exists()
    done = {row["position"] for part in finished for row in read_results(part)}

    summary = scan_on_ray(mixed_listings, demo_index, out, shard_size=2, batch_size=2, resume=True)
    assert summary.shards_skipped == len(finished)
    assert summary.rows == 14 - len(done)  # finished shards are not redone (the cluster pass may fill their ids)
    rows = read_results(out)
    assert sorted(row["position"] for row in rows) == list(range(14))
    assert (out / "_SUCCESS").exists()


class CrashingStage(CascadeStage):
    """Dies like a segfaulting decoder whenever its batch holds a listing named *crash*."""

    def __call__(self, batch):
        if any(b"crash" in name for name in batch["listing"]):
            os._exit(1)
        return super().__call__(batch)


def test_a_listing_that_kills_its_actor_costs_one_row(ray_cluster, demo_index, tmp_path):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import the tests package
    folder = tmp_path / "listings"
    folder.mkdir()
    for photo in sorted((DEMO / "listings").glob("listing_*.jpg"))[:5]:
        shutil.copy(photo, folder / photo.name)
    shutil.copy(DEMO / "listings" / "listing_01.jpg", folder / "listing_03_crash.jpg")
    summary = scan_on_ray(folder, demo_index, tmp_path / "sharded", shard_size=3, batch_size=3, stage=CrashingStage)
    rows = {row["listing"]: row for row in read_results(tmp_path / "sharded")}
    assert len(rows) == 6 and summary.lost == 1
    assert rows["listing_03_crash.jpg"]["status"] == "unreadable"
    assert "died" in rows["listing_03_crash.jpg"]["error"]
    assert all(row["status"] == "ok" for name, row in rows.items() if "crash" not in name)


def test_bad_input_is_refused_before_any_cluster_work(demo_index, mixed_listings, tmp_path):
    nowhere = "127.0.0.1:9"  # no cluster there: reaching it would fail differently
    with pytest.raises(IndexNotFoundError):
        scan_on_ray(mixed_listings, tmp_path / "no-index", tmp_path / "out", address=nowhere)
    manifest = tmp_path / "listings.csv"
    manifest.write_text('path,price\nlistings/a.jpg,"3.00\n', encoding="utf-8")
    with pytest.raises(ListingsError, match=r"listings.csv:2"):
        scan_on_ray(manifest, demo_index, tmp_path / "out", address=nowhere)
    assert not (tmp_path / "out").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.docx").write_text("mine", encoding="utf-8")
    with pytest.raises(MatcherError, match="not a sharded scan"):
        scan_on_ray(mixed_listings, demo_index, tmp_path / "busy", address=nowhere)
    assert (tmp_path / "busy" / "thesis.docx").read_text(encoding="utf-8") == "mine"


def test_resume_refuses_a_plan_made_for_another_scan(ray_cluster, demo_index, mixed_listings, tmp_path):
    out = tmp_path / "sharded"
    scan_on_ray(mixed_listings, demo_index, out, shard_size=7)
    with pytest.raises(MatcherError, match="shard_size 7"):
        scan_on_ray(mixed_listings, demo_index, out, shard_size=5, resume=True)
    again = scan_on_ray(mixed_listings, demo_index, out, shard_size=7, resume=True)
    assert again.shards_skipped == 2 and again.rows == 0
