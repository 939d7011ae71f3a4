"""Re-scan of history against a fresh scan, after one brand is added to the index: both times, their ratio and
how many verdicts differ.

Usage::

    .venv/bin/python scripts/bench_rescan.py BENCH_DIR [--mix marketplace|clusters] [--brand CLASS] [--listings 3000]
        [--seed 0]

Uses ``scripts/bench_clusters.py``'s index of the references without one class (``--brand``, by default the
class after the copied photos' classes; built when missing) and one of two listing mixes: ``marketplace`` (the
default), ``scripts/bench_marketplace.py``'s real everyday photos (the benchmark's ``none`` queries re-encoded)
with 5% copies and other photos of catalog products; or ``clusters``, ``scripts/bench_clusters.py``'s reposts among
quadrants of the benchmark's shelf photos, which look like the catalog far more than marketplace traffic does.
Scans the listings with that index when its results are missing or made with other cascade settings, copies
the index, adds the held-out class (``add_to_index``), then times ``rescan`` of the old results and a fresh
``scan`` of the same listings with the new version (model loaded and warmed up before either; both in this
process), and compares them listing by listing: verdicts, brands of matches, and the closest brand a ``no_match``
row names (a near tie of two low scores may fall either way from stored float16 descriptors:
``matcher.scan.rescore.score_stored``).
"""
from __future__ import annotations

from pathlib import Path
import shutil
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_clusters import WORK, base_index, bench_arguments, held_out_class, make_listings  # noqa: E402
import bench_marketplace  # noqa: E402

from matcher import Matcher, add_to_index, rescan, scan  # noqa: E402
from matcher.cascade import CascadeSettings  # noqa: E402
from matcher.errors import MatcherError  # noqa: E402
from matcher.scan import read_results  # noqa: E402
from matcher.scan.history import read_history, scanned_with  # noqa: E402


def _current_history(results: Path) -> bool:
    """Whether ``results`` has stored descriptors made with the default cascade settings (a history of other
    settings is read again past the gate, which is not what the bench measures)."""
    try:
        return scanned_with(read_history(results).meta, CascadeSettings())
    except MatcherError:
        return False


def main() -> int:
    args = bench_arguments(__doc__, mixes=("marketplace", "clusters"))
    brand = args.brand or held_out_class(args.bench_dir, args.photos)
    index = base_index(args.bench_dir, args.photos, brand)
    if args.mix == "clusters":
        manifest, _ = make_listings(args.bench_dir, args.listings, args.photos, args.seed)
        old = WORK / f"clusters_{args.listings}_{index.name}.jsonl"
    else:
        manifest, _ = bench_marketplace.make_listings(args.bench_dir, args.listings, 0.05, args.seed)
        old = WORK / f"marketplace_{args.listings}_{index.name}.jsonl"
    if not _current_history(old):
        scan(manifest, Matcher.open(index), old)
    added = WORK / "index_added"
    shutil.rmtree(added, ignore_errors=True)
    shutil.copytree(index, added)
    catalog = WORK / "catalog_added"
    shutil.rmtree(catalog, ignore_errors=True)
    shutil.copytree(args.bench_dir / "references" / brand, catalog / brand)
    add_to_index(added, catalog)
    matcher = Matcher.open(added)
    matcher.match_many(sorted((manifest.parent / f"listings_seed{args.seed}").glob("*.jpg"))[:8])  # warm-up
    started = time.perf_counter()
    summary = rescan(old, matcher, WORK / "rescanned.jsonl")
    rescan_s = time.perf_counter() - started
    started = time.perf_counter()
    scan(manifest, matcher, WORK / "fresh.jsonl")
    fresh_s = time.perf_counter() - started
    new = {r["position"]: r for r in read_results(WORK / "rescanned.jsonl")}
    fresh = {r["position"]: r for r in read_results(WORK / "fresh.jsonl")}
    verdicts = sum(1 for p, r in fresh.items() if (new[p]["status"], new[p]["verdict"]) != (r["status"], r["verdict"]))
    brands = sum(1 for p, r in fresh.items() if r["verdict"] not in ("", "no_match") and new[p]["brand"] != r["brand"])
    closest = sum(1 for p, r in fresh.items() if r["verdict"] == "no_match" and new[p]["brand"] != r["brand"])
    print(f"{len(fresh)} listings ({args.mix} mix), brand {brand} added to the index")
    print(summary.line())
    print(f"rescan {rescan_s:.1f} s, fresh scan {fresh_s:.1f} s: x{fresh_s / rescan_s:.1f} faster; "
          f"{verdicts} verdicts differ, {brands} brands of matches differ; {closest} no_match rows name another "
          f"closest brand")
    return 0


if __name__ == "__main__":
    sys.exit(main())
