"""How much a benchmark's metrics move with the index build's random seed alone.

Usage::

    python scripts/seed_spread.py BENCH_DIR [--seeds 1234 77 5] [--setting NAME=VALUE] [--work-dir results/seeds]

The build draws its synthetic listings (``building.synthetic_listings``) from ``BuildSettings.seed``; they fit the
whitening, the scorer and the gate, so two builds of the same catalog with different seeds score the queries
differently. This script builds one index per seed with default settings otherwise, scans the benchmark's queries
with each, and prints every seed's metrics, then their mean and range. A change to the method is worth keeping when
its mean over the seeds beats the default's by more than that range, not when one seed does. ``--setting
NAME=VALUE`` (repeatable) changes a ``BuildSettings`` field for every seed's index: run it with and without, each
in its own ``--work-dir``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from matcher.evaluation import HEADLINE_KEYS as KEYS  # noqa: E402
from matcher.evaluation import run_benchmark  # noqa: E402
from holdout_bench import build_settings  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_dir", type=Path, help="benchmark folder (references/, queries/, ground_truth.csv)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1234, 77, 5], help="build seeds (the default's first)")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                    help="a BuildSettings field for every seed's index (repeatable)")
    ap.add_argument("--work-dir", type=Path, default=Path("results/seeds"))
    args = ap.parse_args(argv)
    print(f"{'seed':<8}" + "".join(f"{k:>19}" for k in KEYS), flush=True)
    rows = []
    for seed in args.seeds:
        metrics = run_benchmark(args.bench_dir, args.work_dir / f"seed{seed}",
                                build_settings=build_settings(args.setting, seed),
                                progress=lambda message: print(f"  {message}", file=sys.stderr, flush=True))
        rows.append([float(metrics[k]) for k in KEYS])
        print(f"{seed:<8}" + "".join(f"{v:>19.3f}" for v in rows[-1]), flush=True)
    values = np.asarray(rows)
    print(f"{'mean':<8}" + "".join(f"{v:>19.3f}" for v in values.mean(axis=0)))
    print(f"{'range':<8}" + "".join(f"{v:>19.3f}" for v in values.max(axis=0) - values.min(axis=0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
