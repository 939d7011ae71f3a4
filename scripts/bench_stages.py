"""Cost of each stage of the matching cascade, in milliseconds per listing.

Usage::

    python scripts/bench_stages.py INDEX_DIR LISTINGS_DIR [--limit 200]

Runs the stages one after another on the same decoded listings (every listing through every stage, as a
listing in doubt would go) and prints the wall time per listing of: decode, global descriptor (CNN), search,
the gate (feature-map windows search + gate model), region search (the cascade's kept crops: CNN + search), SIFT
extraction of the listing, verification of the top candidates, the colour check of verified matches, scoring. The machine is shared and noisy: compare figures from one run with each other, not across runs.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher import ImageError, Matcher  # noqa: E402
from matcher.cascade import (add_colour_check, add_region_evidence, add_verification,  # noqa: E402
                             add_window_similarity, global_evidence, passes_gate, score_evidence)
from matcher.features import extract_local_features  # noqa: E402
from matcher.inputs import iter_listings, load_image  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("listings", type=Path)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    matcher = Matcher.open(args.index_dir)
    version, embedder, settings = matcher.version, matcher.embedder, matcher.settings
    paths = [item.path for item, _ in zip(iter_listings(args.listings), range(args.limit))]
    costs: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        start = time.perf_counter()
        out = fn(*a, **kw)
        costs[name] = costs.get(name, 0.0) + time.perf_counter() - start
        return out

    images = []
    for p in paths:
        try:
            images.append(timed("decode", load_image, p))
        except ImageError:
            pass
    if not images:
        print(f"bench_stages: no decodable listing in {args.listings}", file=sys.stderr)
        return 2
    refs = version.refs
    raw, windows = timed("global CNN", embedder.describe_with_windows, images)
    vectors = refs.whitening.apply(raw)
    evidence = timed("search", global_evidence, refs, vectors, k=settings.candidates)
    timed("gate (windows search)", add_window_similarity, refs, evidence, windows)
    timed("gate (model)", passes_gate, version.scorer, evidence)
    timed("gate (likeness)", refs.likeness.of, raw)
    timed("regions (CNN + search)", add_region_evidence, refs, embedder, images, evidence, vectors,
          grid=settings.region_grid, window=settings.region_size, crops_kept=settings.region_crops_kept)
    for image, ev in zip(images, evidence):
        query = timed("SIFT extract", extract_local_features, image, long_side=settings.sift_long_side,
                      max_features=settings.sift_features)
        timed("verify top candidates", add_verification, refs, query, ev, settings.verify_top,
              mirror_unless=settings.mirror_unless_inliers)
        timed("colour check", add_colour_check, refs, image, ev)
    for ev in evidence:
        timed("score", score_evidence, refs, version.scorer, ev)
    n = len(images)
    print(f"{n} listings from {args.listings}")
    for name, seconds in costs.items():
        print(f"  {name:<24} {1000 * seconds / n:7.1f} ms/listing")
    total = sum(costs.values())
    print(f"  {'total (all stages)':<24} {1000 * total / n:7.1f} ms/listing = {n / total:.1f} listings/s")
    cheap = sum(costs[k] for k in ("decode", "global CNN", "search", "gate (windows search)", "gate (model)",
                                    "gate (likeness)", "score"))
    print(f"  {'cheap path only':<24} {1000 * cheap / n:7.1f} ms/listing = {n / cheap:.1f} listings/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
