"""`matcher eval`: build an index of a benchmark's references, scan its queries, score against its truth.

A benchmark folder has the devbench layout: ``references/<brand>/<image>``, ``queries/<image>``,
``ground_truth.csv`` (optionally with a ``slice`` column, for per-slice rows) and optionally ``manifest.csv`` (edit
chains, for the per-edit breakdown).
"""
from __future__ import annotations

from pathlib import Path

from ..building import BuildSettings, build_index
from ..cascade import CascadeSettings, Matcher
from ..errors import CatalogError
from ..features import Embedder
from ..scan import read_results, scan
from .metrics import evaluate, load_benchmark, score_rows_from_results, write_scores_csv


def run_benchmark(bench_dir: str | Path, work_dir: str | Path, *, top_k: int = 10, rebuild: bool = True,
                  settings: CascadeSettings = CascadeSettings(), build_settings: BuildSettings = BuildSettings(),
                  progress=print, runtime: str = "auto", region_runtime: str = "auto") -> dict:
    """Build (or reuse) ``work_dir/index``, scan the queries into ``work_dir/results.jsonl``, return the metrics.

    runtime, region_runtime : the CNN runtimes of a (re)built index (``Embedder``); the scan uses the index's.
    Also writes ``work_dir/scores.csv`` (listing,brand,reference,score) for external evaluators. A benchmark with a
    ``slice`` column gets per-slice rows at brand_thr@P90 and at the index's operating (verdict) threshold.
    """
    bench_dir, work_dir = Path(bench_dir), Path(work_dir)
    bench = load_benchmark(bench_dir)
    if not (bench_dir / "queries").is_dir():
        raise CatalogError(f"{bench_dir}: no queries/ folder")
    index_dir = work_dir / "index"
    if rebuild or not (index_dir / "CURRENT").exists():
        embedder = Embedder(runtime=runtime, region_runtime=region_runtime)
        build_index(bench_dir / "references", index_dir, embedder=embedder, settings=build_settings, progress=progress)
    matcher = Matcher.open(index_dir, settings=settings)
    results = work_dir / "results.jsonl"
    summary = scan(bench_dir / "queries", matcher, results, top_k=top_k)
    progress(summary.line())
    rows = score_rows_from_results(read_results(results))
    write_scores_csv(rows, work_dir / "scores.csv")
    metrics = evaluate(bench, rows, operating_threshold=matcher.version.scorer.threshold)
    metrics["scan_seconds"] = summary.seconds
    metrics["listings_per_second"] = summary.per_second
    return metrics
