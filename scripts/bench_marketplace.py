"""Scan speed on marketplace-like traffic made from a benchmark in the devbench layout (~5% of listings match).

Usage::

    .venv/bin/python scripts/bench_marketplace.py BENCH_DIR [--listings 600] [--match-rate 0.05]

Builds (or reuses) an index of ``BENCH_DIR/references`` in ``results/marketplace/index``, then writes
``--listings`` JPEGs to ``results/marketplace/listings``: the benchmark's ``none`` queries re-encoded many times
(random JPEG quality 70-95 and scale 85-100%, so every file is distinct) and, for ``--match-rate`` of them, its
``copy`` / ``same_product`` queries re-encoded the same way. Prints, in one run: the naive baseline's images/s on
these files (PIL + eager torch fp32, ``bench_scan.naive_images_per_second``), then ``matcher scan`` with default
settings: listings/s (model and index loading excluded), the shares of listings checked in full (past the gate
to the expensive stages) and dismissed (``index.likeness``), and the verdicts per kind.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
import sys
import time

from PIL import Image
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scan import naive_images_per_second  # noqa: E402

from matcher import IndexMismatchError, IndexNotFoundError, Matcher, build_index, scan  # noqa: E402
from matcher.scan import read_results  # noqa: E402

WORK = Path(__file__).resolve().parent.parent / "results" / "marketplace"


def make_listings(bench: Path, count: int, match_rate: float, seed: int) -> tuple[Path, dict[str, str]]:
    """Write the listings (reused when present); a .txt manifest and listing name -> kind."""
    truth = list(csv.DictReader(open(bench / "ground_truth.csv", newline="", encoding="utf-8")))
    nones = [r["query"] for r in truth if r["kind"] == "none"]
    matches = [r["query"] for r in truth if r["kind"] in ("copy", "same_product")]
    kind_of = {r["query"]: r["kind"] for r in truth}
    rng = np.random.default_rng(seed)
    folder = WORK / f"listings_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    kinds = {}
    for i in range(count):
        source = matches[int(rng.integers(len(matches)))] if rng.random() < match_rate else \
            nones[int(rng.integers(len(nones)))]
        quality, scale = int(rng.integers(70, 96)), float(rng.uniform(0.85, 1.0))
        name = f"m{i:05d}.jpg"
        kinds[name] = kind_of[source]
        if not (folder / name).exists():
            image = Image.open(bench / source).convert("RGB")
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
            image.save(folder / name, "JPEG", quality=quality)
    manifest = WORK / f"listings_seed{seed}_{count}.txt"
    manifest.write_text("".join(f"{folder.name}/{name}\n" for name in kinds))
    return manifest, kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--listings", type=int, default=600)
    parser.add_argument("--match-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    index = WORK / "index"
    try:
        Matcher.open(index)
    except (IndexNotFoundError, IndexMismatchError):
        build_index(args.bench_dir / "references", index)
    manifest, kinds = make_listings(args.bench_dir, args.listings, args.match_rate, args.seed)
    paths = [WORK / line for line in manifest.read_text().splitlines()]
    naive = naive_images_per_second(paths[:256])
    matcher = Matcher.open(index)
    matcher.match_many(paths[:8])  # warm-up
    started = time.perf_counter()
    summary = scan(manifest, matcher, WORK / "results.jsonl", workers=None)
    seconds = time.perf_counter() - started
    rows = read_results(WORK / "results.jsonl")
    checked = sum(summary.checks.values()) or 1
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = by_kind.setdefault(kinds[Path(r["listing"]).name], {})
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    print(f"marketplace mix from {args.bench_dir}: {len(rows)} listings, kinds "
          f"{ {k: sum(v.values()) for k, v in by_kind.items()} }")
    print(f"naive baseline (PIL + eager torch fp32): {naive:.1f} images/s")
    print(f"matcher scan: {len(rows) / seconds:.1f} listings/s (x{len(rows) / seconds / naive:.2f} naive), "
          f"{100 * summary.checks['full'] / checked:.0f}% checked in full (region search + SIFT), "
          f"{100 * summary.checks['dismissed'] / checked:.0f}% dismissed as unlike the catalog's listings")
    for kind, counts in sorted(by_kind.items()):
        print(f"  {kind:13} verdicts {counts}")
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
