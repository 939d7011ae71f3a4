"""Ablation on a benchmark: the metrics with each piece of the method turned off.

Usage::

    python scripts/ablation.py BENCH_DIR [--work-dir results/ablation]

Rows: the default pipeline; region search for every doubtful listing (none settled by a conclusive
verification of its global candidates); without region search; without SIFT verification and regions (global
scorer only); without distinctive inliers (no keypoints marked as shared between brands); without brand
prototypes (index calibrated and queries scored without them); without the colour check; without whitening (index
rebuilt on raw GeM descriptors); with the calibration's sister listings counted once instead of
``BuildSettings.sister_weight`` times; with the full brand model's colour weights fitted freely (any sign) instead of
under ``cascade.evidence.BRAND_FEATURE_SIGNS``; without the listing likeness (``index.likeness``: no listing is
dismissed);
with the region crops embedded by the fp32 CNN instead of its int8 graph (``Embedder.region_runtime``).
Each row rebuilds or reuses an index under WORK_DIR and prints the guide's
metrics and the scan speed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher import BuildSettings, CascadeSettings  # noqa: E402
from matcher.evaluation import HEADLINE_KEYS, run_benchmark  # noqa: E402

KEYS = [*HEADLINE_KEYS, "listings_per_second"]


class Variant(NamedTuple):
    """One row: its name, index folder (shared by variants with the same build), build and cascade settings, and
    the Embedder's runtime and region_runtime ("auto": OpenVINO bf16 on a CPU with bf16 instructions, else ONNX
    Runtime fp32 with int8 region crops)."""

    name: str
    index_name: str
    build: BuildSettings
    cascade: CascadeSettings
    runtime: str = "auto"
    region_runtime: str = "auto"


VARIANTS = [
    Variant("default", "default", BuildSettings(), CascadeSettings()),
    Variant("regions for every listing", "default", BuildSettings(), CascadeSettings(settled_inliers=0)),
    Variant("no regions", "default", BuildSettings(), CascadeSettings(regions=False)),
    Variant("no verification, no regions", "default", BuildSettings(), CascadeSettings(regions=False, verify=False)),
    Variant("no distinctive inliers", "unshared", BuildSettings(shared_neighbours=0), CascadeSettings()),
    Variant("no brand prototypes", "unprototyped", BuildSettings(brand_prototypes=False), CascadeSettings()),
    Variant("no colour check", "colourless", BuildSettings(colour_check=False), CascadeSettings()),
    Variant("no whitening", "raw", BuildSettings(whitening_dim=0), CascadeSettings()),
    Variant("sister listings counted once", "unweighted", BuildSettings(sister_weight=1.0), CascadeSettings()),
    Variant("colour weights of any sign", "unsigned", BuildSettings(colour_signs=False), CascadeSettings()),
    Variant("no listing likeness", "unlike", BuildSettings(listing_likeness=False), CascadeSettings()),
    Variant("ONNX Runtime fp32, int8 region crops", "onnx", BuildSettings(), CascadeSettings(), "onnx", "auto"),
    Variant("ONNX Runtime fp32, fp32 region crops", "onnxcrops", BuildSettings(), CascadeSettings(), "onnx", "same"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--work-dir", type=Path, default=Path("results/ablation"))
    args = parser.parse_args()
    built: set[str] = set()
    table = []
    for name, index_name, build, cascade, runtime, region_runtime in VARIANTS:
        work = args.work_dir / index_name
        metrics = run_benchmark(args.bench_dir, work, rebuild=index_name not in built, settings=cascade,
                                build_settings=build, runtime=runtime, region_runtime=region_runtime,
                                progress=lambda m: print(f"  [{name}] {m}", file=sys.stderr))
        built.add(index_name)
        table.append((name, metrics))
        print(json.dumps({"variant": name, **{k: metrics[k] for k in KEYS}}), flush=True)
    width = max(len(n) for n, _ in table)
    print(f"\n{'variant':<{width}}  " + "  ".join(f"{k:>12}" for k in KEYS))
    for name, m in table:
        cells = ["n/a" if m[k] is None else f"{m[k]:.3f}" for k in KEYS]
        print(f"{name:<{width}}  " + "  ".join(f"{c:>12}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
