"""How the engine does on look-alike products the catalog lacks: benchmarks derived by holding classes out.

Usage::

    python scripts/holdout_bench.py BENCH_DIR --hold Red-Delicious Arla-Sour-Milk [--hold ...] \\
        [--random 2 --per-variant 3] [--setting whitening_dim=128] [--work-dir results/holdout]

A benchmark in the devbench layout has a few *hard negative* classes: real photos of products it has no references
for, chosen to look like those it has (another yoghurt of the same brand, another pepper). Its false-positive rate
measures the engine on those few classes only. Each variant here is a new benchmark made from the same files: the
held-out classes' references are removed from the catalog and their queries (edited copies and other photos of
them) become ``none`` queries, so that products of the catalog's own families become the look-alikes the engine
must refuse. Each ``--hold`` lists the classes of one variant; ``--random N`` adds N variants of ``--per-variant``
classes drawn at random (seeded).

For each variant: build an index of the remaining references (default settings), scan every query, print the
guide's metrics and ``held_fp@P90``, the share of the held-out classes' queries whose best brand score reaches the
P90 threshold (brand_thr@P90) of that variant, with its count. The derived benchmark folders hold symlinks only.
``--setting NAME=VALUE`` (repeatable) changes a ``BuildSettings`` field for every variant's index, to compare
build settings on look-alikes the catalog lacks.
"""
from __future__ import annotations

import argparse
import csv
from dataclasses import replace
import os
from pathlib import Path
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher import BuildSettings  # noqa: E402
from matcher.evaluation import HEADLINE_KEYS as KEYS  # noqa: E402
from matcher.evaluation import (false_positives, load_benchmark, normalize_path, read_scores_csv,  # noqa: E402
                                run_benchmark)


def benchmark_classes(bench: Path) -> list[str]:
    """The class folders of ``bench/references``, sorted."""
    return sorted(p.name for p in (bench / "references").iterdir() if p.is_dir())


def derive_benchmark(bench: Path, held: set[str], out: Path) -> list[str]:
    """Write ``out`` (references/, queries/, ground_truth.csv, manifest.csv) with ``held`` classes' references
    removed and their queries turned into ``none``; return the held-out queries' names."""
    classes = benchmark_classes(bench)
    unknown = held - set(classes)
    if unknown:
        raise SystemExit(f"holdout_bench: {bench}/references has no class {', '.join(sorted(unknown))}")
    out.mkdir(parents=True, exist_ok=True)
    for name in classes:
        if name in held:
            continue
        (out / "references" / name).mkdir(parents=True, exist_ok=True)
        for image in sorted((bench / "references" / name).iterdir()):
            _link(image, out / "references" / name / image.name)
    _link(bench / "queries", out / "queries")
    if (bench / "manifest.csv").exists():
        _link(bench / "manifest.csv", out / "manifest.csv")
    with open(bench / "ground_truth.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    held_queries = []
    for row in rows:
        if row["reference_class"] in held:
            held_queries.append(row["query"])
            row.update(reference_class="", reference_image="", kind="none")
    with open(out / "ground_truth.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return held_queries


def _link(target: Path, link: Path) -> None:
    if not link.exists():
        os.symlink(target.resolve(), link)


def held_false_positives(bench_dir: Path, scores_csv: Path, held_queries: list[str], threshold: float) -> float:
    """Share of ``held_queries`` that are among the benchmark's false positives at ``threshold``
    (``evaluation.false_positives``: distractors whose best score in ``scores_csv`` reaches it)."""
    bench = load_benchmark(bench_dir)
    passed = {r.listing for r in false_positives(bench, read_scores_csv(scores_csv), threshold)}
    held = {normalize_path(q, bench.bench_dir, "queries") for q in held_queries}
    return len(passed & held) / len(held) if held else float("nan")


def build_settings(assignments: list[str], seed: int) -> BuildSettings:
    """BuildSettings with ``seed`` and each ``NAME=VALUE`` applied (VALUE cast to the field's default's type)."""
    settings = BuildSettings(seed=seed)
    for text in assignments:
        name, _, value = text.partition("=")
        if not hasattr(settings, name) or not value:
            raise SystemExit(f"holdout_bench: --setting {text!r}: expected NAME=VALUE with a BuildSettings field")
        default = getattr(settings, name)
        cast = (lambda v: v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        settings = replace(settings, **{name: cast(value)})
    return settings


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_dir", type=Path, help="benchmark folder (references/, queries/, ground_truth.csv)")
    ap.add_argument("--hold", nargs="+", action="append", default=[], metavar="CLASS",
                    help="classes held out together in one variant (repeat for more variants)")
    ap.add_argument("--random", type=int, default=0, help="variants of randomly drawn classes to add")
    ap.add_argument("--per-variant", type=int, default=3, help="classes per random variant")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    ap.add_argument("--build-seed", type=int, default=BuildSettings().seed, help="index build seed")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                    help="a BuildSettings field for every variant's index (repeatable)")
    ap.add_argument("--work-dir", type=Path, default=Path("results/holdout"))
    args = ap.parse_args(argv)
    settings = build_settings(args.setting, args.build_seed)
    if not (args.bench_dir / "references").is_dir() or not (args.bench_dir / "ground_truth.csv").is_file():
        ap.error(f"{args.bench_dir}: not a benchmark folder (references/, queries/, ground_truth.csv)")
    classes = benchmark_classes(args.bench_dir)
    rng = np.random.default_rng(args.seed)
    variants = [sorted(set(h)) for h in args.hold]
    variants += [sorted(rng.choice(classes, args.per_variant, replace=False).tolist()) for _ in range(args.random)]
    if not variants:
        ap.error("give at least one --hold or --random N")
    header = f"{'variant':<4}" + "".join(f"{k:>18}" for k in KEYS) + f"{'held_fp@P90':>14}{'held n':>8}"
    print(header, flush=True)
    rows = []
    for i, held in enumerate(variants):
        folder = args.work_dir / f"variant{i}"
        held_queries = derive_benchmark(args.bench_dir, set(held), folder / "bench")
        metrics = run_benchmark(folder / "bench", folder, build_settings=settings,
                                progress=lambda message: print(f"  {message}", file=sys.stderr, flush=True))
        held_fp = held_false_positives(folder / "bench", folder / "scores.csv", held_queries,
                                       float(metrics["brand_thr@P90"]))
        rows.append([float(metrics[k]) for k in KEYS] + [held_fp])
        print(f"{i:<4}" + "".join(f"{v:>18.3f}" for v in rows[-1][:-1]) + f"{held_fp:>14.3f}{len(held_queries):>8}"
              f"   held out: {', '.join(held)}", flush=True)
    if len(rows) > 1:
        table = np.asarray(rows)
        print(f"{'mean':<4}" + "".join(f"{v:>18.3f}" for v in table.mean(axis=0)), flush=True)
        print(f"{'min':<4}" + "".join(f"{v:>18.3f}" for v in table.min(axis=0)), flush=True)
        print(f"{'max':<4}" + "".join(f"{v:>18.3f}" for v in table.max(axis=0)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
