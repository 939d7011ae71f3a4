"""Decoding in worker processes (matcher/reader.py): same rows as in-process, crashes, kill -9 and --resume."""
from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import threading
import time

from PIL import Image
import pytest

from matcher import MatchResult, scan
from matcher.errors import ListingsError
from matcher.inputs.listings import iter_listings
import matcher.inputs.reader as reader
from matcher.inputs.reader import DecodePool
from matcher.scan.writers import read_results
from tests.badimages import write_bad_images
from tests.conftest import DEMO, REPO

_ORIGINAL_READ = reader._worker_read


def crashing_read(path: str, name: str):
    """Runs in a worker (pickled by reference): dies like a segfaulting decoder on files named *crash*."""
    if "crash" in name:
        os.kill(os.getpid(), signal.SIGKILL)
    return _ORIGINAL_READ(path, name)


class FakeMatcher:
    """Matches nothing, instantly: for tests of the scan's plumbing."""

    typical_prices: dict = {}

    def match_decoded(self, images):
        return [MatchResult(status="ok") for _ in images]


def _batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def _warm_batches(pool, batches):
    """Yield the first two batches at once (the pool starts at the second), then wait until it answers."""
    for i, batch in enumerate(batches):
        if i == 2:
            assert pool.ready.wait(120) and pool.workers, "the decode pool did not start"
        yield batch


def _summary(decoded):
    return [(d.listing.listing, d.digest,
             None if d.image is None else getattr(d.image, "kind", None) or (d.image.size, d.image.tobytes()))
            for d in decoded]


def test_workers_decode_like_the_main_process(tmp_path):
    expected = write_bad_images(tmp_path)
    for name in sorted(p.name for p in (DEMO / "listings").iterdir())[:6]:
        shutil.copy(DEMO / "listings" / name, tmp_path / name)
    items = list(iter_listings(tmp_path))
    with DecodePool(0) as pool:
        here = [d for _, ds in pool.read(_batches(items, 3)) for d in ds]
    with DecodePool(1) as pool:  # one worker: it sees every repeat
        there = [d for _, ds in pool.read(_warm_batches(pool, _batches(items + items, 3))) for d in ds]
    assert _summary(there[:len(items)]) == _summary(here)
    kinds = {d.listing.listing: getattr(d.image, "kind", "ok") for d in here}
    assert all(kinds[name] == status for name, status in expected.items() if name in kinds)
    # a repeat of bytes a decoding process already decoded comes back undecoded, with its digest
    repeats = there[len(items):]
    assert [d.digest for d in repeats] == [d.digest for d in here]
    assert any(d.image is None for d in repeats)


class RecordingMatcher(FakeMatcher):
    """Names each image by its pixel size, and records every image it was asked to match."""

    def __init__(self):
        self.matched = []

    def match_decoded(self, images):
        self.matched += [im.size for im in images]
        return [MatchResult(status="ok", brand=f"{im.size[0]}x{im.size[1]}") for im in images]


@pytest.mark.parametrize("workers", [0, 1])
def test_repeats_within_and_across_batches_are_matched_once(tmp_path, workers):
    # a repeat of bytes matched before (in this batch or an earlier one) is not matched again, and every row
    # gets its own image's result, whichever process decoded it
    sizes = [(40, 30), (50, 30), (40, 30), (60, 30), (50, 30), (70, 30), (40, 30), (60, 30)]
    distinct = {}
    for i, size in enumerate(sizes):
        path = tmp_path / f"{i:02d}.png"
        if size in distinct:
            shutil.copy(distinct[size], path)
        else:
            Image.new("RGB", size, (i * 20, 100, 50)).save(path)
            distinct[size] = path
    fake = RecordingMatcher()
    summary = scan(tmp_path, fake, tmp_path / "out.jsonl", batch_size=2, workers=workers, rank=False)
    rows = read_results(tmp_path / "out.jsonl")
    assert summary.total == len(rows) == len(sizes)
    assert [r["brand"] for r in sorted(rows, key=lambda r: r["position"])] == [f"{w}x{h}" for w, h in sizes]
    assert sorted(fake.matched) == sorted(distinct)  # each distinct image matched once


def test_a_listing_that_kills_its_worker_costs_one_row(tmp_path, monkeypatch):
    photos = sorted((DEMO / "listings").glob("listing_*.jpg"))[:14]
    for i, photo in enumerate(photos):
        shutil.copy(photo, tmp_path / f"{i:02d}.jpg")
    shutil.copy(photos[0], tmp_path / "07_crash.jpg")
    shutil.copy(photos[1], tmp_path / "11_crash.jpg")
    monkeypatch.setattr(reader, "_worker_read", crashing_read)
    items = list(iter_listings(tmp_path))
    with DecodePool(2, ahead=2) as pool:
        out = [(batch, ds) for batch, ds in pool.read(_warm_batches(pool, _batches(items, 2)))]
        assert pool.crashes == 2
    decoded = [d for _, ds in out for d in ds]
    assert [d.listing.position for d in decoded] == list(range(len(items)))
    bad = {d.listing.listing: d.image for d in decoded if not hasattr(d.image, "size")}
    assert set(bad) == {"07_crash.jpg", "11_crash.jpg"}
    assert all(e.kind == "unreadable" and "crashed" in str(e) for e in bad.values())


@pytest.mark.parametrize("matching_seconds, decoding_seconds, started", [(0.0, 0.05, True), (0.6, 0.0, False)])
def test_by_default_workers_start_only_when_decoding_is_worth_it(matching_seconds, decoding_seconds, started,
                                                                  monkeypatch):
    items = list(iter_listings(DEMO / "listings"))[:8]  # the first batch does not count: nothing was read ahead
    original = reader.read_listing

    def slow_read(*args):  # makes the wait for decoding measurable on any machine (a fast one decodes in ~1 ms)
        time.sleep(decoding_seconds)
        return original(*args)

    monkeypatch.setattr(reader, "read_listing", slow_read)
    with DecodePool(None) as pool:
        for _ in pool.read(_batches(items, 2)):
            time.sleep(matching_seconds)  # decoding 2 demo listings takes ~5 ms: far under 10% of 0.6 s
    assert pool.ready.is_set() == started


def test_without_workers_the_next_batch_is_decoded_while_this_one_is_matched(monkeypatch):
    items = list(iter_listings(DEMO / "listings"))[:6]
    decoded_by: dict[str, str] = {}
    original = reader.read_listing

    def recording_read(path, name, seen=None):
        decoded_by[name] = threading.current_thread().name
        return original(path, name, seen)

    monkeypatch.setattr(reader, "read_listing", recording_read)
    with DecodePool(0) as pool:
        for k, (batch, decoded) in enumerate(pool.read(_batches(items, 2))):
            assert [d.listing for d in decoded] == batch and all(d.image is not None for d in decoded)
            time.sleep(0.3)  # "matching" this batch; decoding the next 2 demo listings takes ~10 ms
            following = items[2 * k + 2:2 * k + 4]
            assert all(item.listing in decoded_by for item in following)
    assert set(decoded_by) == {item.listing for item in items}
    assert all(name.startswith("matcher-read") for name in decoded_by.values())


def test_scan_rows_do_not_depend_on_workers(demo_matcher, tmp_path):
    for name in sorted(p.name for p in (DEMO / "listings").iterdir())[:10]:
        shutil.copy(DEMO / "listings" / name, tmp_path / name)
    rows = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}.jsonl"
        summary = scan(tmp_path, demo_matcher, out, batch_size=2, workers=workers)
        assert summary.total == 10
        rows[workers] = read_results(out)
    assert rows[0] == rows[2]


def test_manifest_error_comes_after_the_rows_before_it(tmp_path):
    manifest = tmp_path / "listings.csv"
    lines = ["path,listing_id"] + [f"{DEMO}/listings/listing_{i:02d}.jpg,L{i}" for i in range(1, 11)]
    manifest.write_text("\n".join(lines + ["x.jpg,L11,extra"]) + "\n", encoding="utf-8")
    out = tmp_path / "r.jsonl"
    with pytest.raises(ListingsError):
        scan(manifest, FakeMatcher(), out, batch_size=2, workers=2)
    assert [r["position"] for r in read_results(out)] == list(range(10))


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and SIGKILL")
def test_resume_after_kill_9(demo_index, demo_matcher, tmp_path):
    listings = tmp_path / "listings"
    listings.mkdir()
    photos = sorted((DEMO / "listings").glob("*.jpg"))
    for i in range(60):  # 60 listings, repeats of the demo's (and its broken file) included
        shutil.copy(photos[i % len(photos)], listings / f"l{i:02d}{photos[i % len(photos)].suffix}")
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-c", "from matcher.cli import main; main()", "scan", str(listings),
               "--index", str(demo_index), "--out", str(out), "--batch-size", "4", "--workers", "2"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_file() and out.read_bytes().count(b"\n") >= 12:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the scan ended before it could be killed: {proc.stderr.read()[-2000:]!r}"
    helpers = _descendants(proc.pid)  # forkserver, decode workers, resource tracker
    assert helpers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(read_results(out))
    assert 12 <= done_before < 60

    summary = scan(listings, demo_matcher, out, batch_size=4, workers=2, resume=True)
    assert summary.skipped == done_before and summary.total == 60 - done_before
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a whole line
    rows = [json.loads(line) for line in lines[:-1]]  # no torn line anywhere
    assert sorted(r["position"] for r in rows) == list(range(60))
    assert len({r["listing"] for r in rows}) == 60
    broken = sum(photos[i % len(photos)].name == "broken.jpg" for i in range(60))
    statuses = [r["status"] for r in rows]
    assert statuses.count("not_an_image") == broken and statuses.count("ok") == 60 - broken
    # the killed scan's worker processes (and forkserver) do not outlive it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in helpers):
        time.sleep(0.2)
    assert not [pid for pid in helpers if _alive(pid)]
