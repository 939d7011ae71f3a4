"""`matcher scan` and `matcher report`: a batch scan of listings into a results file, and its HTML report."""
from __future__ import annotations

from pathlib import Path
import sys
from typing import Optional

import typer

from ..errors import MatcherError
from .common import app, domain_errors


@app.command("scan")
@domain_errors
def scan_command(listings: Path = typer.Argument(..., help="Folder of listing images, or a .txt/.csv/.jsonl/.parquet manifest."),
                 index: Path = typer.Option(..., "--index", "-i", help="Index folder."),
                 out: Path = typer.Option(..., "--out", "-o", help="Results file: .jsonl, .csv or .parquet (--engine ray: a folder of Parquet shards)."),
                 top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Candidate brands kept per listing (JSONL 'matches')."),
                 resume: bool = typer.Option(False, help="Continue a killed scan into the same results file (--engine ray: redo only unfinished shards)."),
                 batch_size: int = typer.Option(32, min=1, help="Listings per batch."),
                 threads: Optional[int] = typer.Option(None, help="CPU threads for the CNN."),
                 device: str = typer.Option("cpu", help="Torch device for the CNN, e.g. cpu or cuda."),
                 workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                                       help="Processes that decode listings while the CNN runs "
                                                            "(default: one per CPU, at most 8, once waiting for "
                                                            "decoding takes >= 10% of the time; 0: a thread of "
                                                            "this process reads one batch ahead)."),
                 min_suspicion: float = typer.Option(0.0, "--min-suspicion", min=0.0, max=1.0,
                                                     help="Leave out listings less suspicious than this (listings "
                                                          "that failed to decode always stay; local engine)."),
                 report: Optional[Path] = typer.Option(None, "--report",
                                                       help="Also write an HTML report of the suspects here."),
                 engine: str = typer.Option("local", "--engine", help="local (this process and its decode "
                                                                      "workers) or ray (Ray Data: docs/scale-out.md)."),
                 address: Optional[str] = typer.Option(None, "--address", help="--engine ray: the Ray cluster to "
                                                       "join (default: a local Ray instance, stopped after)."),
                 shard_size: int = typer.Option(10_000, "--shard-size", min=1, help="--engine ray: listings per "
                                                "Parquet shard (the unit --resume redoes)."),
                 actors: Optional[int] = typer.Option(None, "--actors", min=1, help="--engine ray: cascade actors, "
                                                      "each holding the index and the CNN once (default: one per "
                                                      "GPU with --device cuda, else 3/4 of the cluster's CPUs)."),
                 cpus_per_actor: float = typer.Option(1.0, "--cpus-per-actor", min=0.1, help="--engine ray: CPUs "
                                                      "Ray reserves per cascade actor (its CNN threads: --threads, "
                                                      "default the cluster's CPUs divided among the actors)."),
                 clusters: str = typer.Option("suspects", "--clusters", help="Near-duplicate listings that share "
                                              "a cluster_id: suspects (pairs with a copy or same_product listing), "
                                              "all (every pair, slower), or none.")):
    """Scan listing images against an index; one result row per input, most suspicious first."""
    if engine not in ("local", "ray"):
        raise MatcherError(f"unknown --engine {engine!r}; use local or ray")
    if clusters not in ("suspects", "all", "none"):
        raise MatcherError(f"unknown --clusters {clusters!r}; use suspects, all or none")
    from ..scan import ClusterSettings

    cluster_settings = None if clusters == "none" else ClusterSettings(scope=clusters)
    if not listings.exists():
        raise MatcherError(f"{listings}: listings folder or manifest not found")
    _check_scan_outputs(listings, index, out, report)
    if engine == "ray":
        if min_suspicion or workers is not None:
            raise MatcherError("--min-suspicion and --workers are options of the local engine; --engine ray writes "
                               "every row and decodes in Ray tasks")
        summary = _scan_on_ray(listings, index, out, address=address, shard_size=shard_size, resume=resume,
                               top_k=top_k, device=device, threads=threads, actors=actors,
                               cpus_per_actor=cpus_per_actor, batch_size=batch_size, clusters=cluster_settings)
    else:
        summary = _scan_here(listings, index, out, top_k=top_k, resume=resume, batch_size=batch_size,
                             threads=threads, device=device, workers=workers, min_suspicion=min_suspicion,
                             clusters=cluster_settings)
    flagged = [r for r in summary.top if r["verdict"] != "no_match"]
    if flagged:
        typer.echo("top suspects (suspicion, score, verdict, brand, listing ~ reference):")
        for r in flagged:
            typer.echo(f"  {r['suspicion']:.3f}  {r['score']:.3f}  {r['verdict']:<12} {r['brand']:<24} "
                       f"{r['listing']}  ~ {r['reference']}")
    typer.echo(summary.line())
    for note in getattr(summary, "notes", list)():  # clusters, sellers, a flooding reference (local scans)
        typer.echo(note)
    typer.echo(f"results: {Path(out).resolve()}")
    if report is not None:
        _write_report(out, index, report, min_suspicion)


def _scan_here(listings: Path, index: Path, out: Path, *, threads, device, **options):
    """The local engine, with a progress bar on a terminal."""
    from ..cascade import Matcher
    from ..inputs import iter_listings
    from ..scan import scan

    matcher = Matcher.open(index, device=device, threads=threads)
    total = sum(1 for _ in iter_listings(listings)) if sys.stderr.isatty() else None
    if not total:
        return scan(listings, matcher, out, **options)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("scanning", total=total)
        return scan(listings, matcher, out, on_batch=lambda n: bar.advance(task, n), **options)


def _scan_on_ray(listings: Path, index: Path, out: Path, **options):
    """The Ray engine; a line on stderr per shard written."""
    from ..scan.distributed import scan_on_ray

    return scan_on_ray(listings, index, out, on_shard=lambda done, total: typer.echo(
        f"shard {done}/{total} written", err=True), **options)


def _check_scan_outputs(listings: Path, index: Path, out: Path, report: Optional[Path]) -> None:
    """Refuse, before the model loads, a results file or report that would overwrite an input or the index."""
    from ..scan import check_output

    source = ("listings folder" if listings.is_dir() else "listings manifest", listings)
    check_output(out, "results", inputs=[source], folders=[("index folder", index)])
    if report is not None:
        check_output(report, "report", inputs=[source, ("results file", out)], folders=[("index folder", index)])
        check_output(report.with_name(report.stem + "_files"), "report", inputs=[source, ("results file", out)],
                     folders=[("index folder", index)])


def _write_report(results: Path, index: Path, out: Path, min_suspicion: float) -> None:
    from ..report import write_report

    written = write_report(results, index, out, min_suspicion=min_suspicion)
    typer.echo(written.line())


@app.command("report")
@domain_errors
def report_command(results: Path = typer.Argument(..., help="Results of `matcher scan` (.jsonl, .csv, .parquet, or "
                                                             "the folder of an --engine ray scan)."),
                   index: Path = typer.Option(..., "--index", "-i", help="The index the scan used (for reference "
                                                                         "thumbnails)."),
                   out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
                   min_suspicion: float = typer.Option(0.0, "--min-suspicion", min=0.0, max=1.0,
                                                       help="Leave out suspects less suspicious than this.")):
    """Write an HTML report of a results file: suspects ranked by suspicion, evidence side by side."""
    _write_report(results, index, out, min_suspicion)
