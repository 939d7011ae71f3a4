"""`matcher` command line: a thin typer app over the library.

Library errors (``MatcherError``) become one line on stderr and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
import sys
from typing import List, Optional

import typer

from .errors import MatcherError

app = typer.Typer(help="Find listing images that copy or imitate a brand's genuine reference photos.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
index_app = typer.Typer(help="Build, update and inspect indexes of genuine reference photos.", no_args_is_help=True)
app.add_typer(index_app, name="index")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def domain_errors(command):
    """Turn MatcherError (and a missing torch extra, Ctrl-C) into a one-line message and exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MatcherError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


def _say(message: str) -> None:
    typer.echo(message, err=True)


RUNTIME_HELP = ("auto (OpenVINO bf16 on a CPU with bf16 instructions, else ONNX Runtime fp32), onnx (fp32), bf16, "
                "int8 (ONNX Runtime, statically quantised) or torch (fp32). Scans of the index use its runtime.")


def _runtime(name: str) -> str:
    """``--runtime`` checked before any work (``runtime.make_runner`` would refuse it with a traceback)."""
    from .features.runtimes import RUNTIMES

    if name not in RUNTIMES:
        _fail(f"unknown --runtime {name!r}; use one of {', '.join(RUNTIMES)}", 2)
    return name


@index_app.command("build")
@domain_errors
def index_build(catalog_dir: Path = typer.Argument(..., help="Folder of <brand>/<image> reference photos."),
                out: Path = typer.Option(..., "--out", "-o", help="Index folder to create or publish a new version in."),
                threads: Optional[int] = typer.Option(None, help="CPU threads for the CNN."),
                runtime: str = typer.Option("auto", help=RUNTIME_HELP)):
    """Build an index of a brand catalog and publish it as a new version of OUT."""
    from .building import build_index

    published = build_index(catalog_dir, out, runtime=_runtime(runtime), threads=threads, progress=_say)
    typer.echo(str(published))


@index_app.command("info")
@domain_errors
def index_info(index_dir: Path = typer.Argument(..., help="Index folder."),
               as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON.")):
    """Brands, counts, model, version, size and operating threshold of an index."""
    from .index import published_manifest, region_runtime_of, store

    folder, manifest = published_manifest(index_dir)
    if as_json:
        typer.echo(json.dumps(manifest, indent=2, sort_keys=True))
        return
    size = sum(meta.get("bytes", 0) for meta in manifest.get("files", {}).values())
    fp = manifest.get("fingerprint", {})
    typer.echo(f"index:      {Path(index_dir).resolve()}")
    typer.echo(f"version:    {folder.name} (of {len(store.list_versions(index_dir))} kept), created {manifest.get('created')}")
    typer.echo(f"model:      {fp.get('backbone_timm')} weights {str(fp.get('weights_sha256'))[:12]} runtime {fp.get('runtime')}"
               f", region crops {region_runtime_of(fp)}")
    typer.echo(f"descriptor: {json.dumps(fp.get('descriptor'))} -> whitened {manifest.get('dim')}-d, {manifest.get('metric')}")
    typer.echo(f"index type: {manifest.get('index_type')}, {size / 1e6:.1f} MB on disk")
    typer.echo(f"threshold:  {manifest.get('operating_threshold')} (brand score for a copy/same_product verdict)")
    calibration = manifest.get("calibration", {})
    if "gate_threshold" in calibration:
        typer.echo(f"gate:       {calibration['gate_threshold']:.3f} (keeps {calibration.get('gate_recall', 0.99):.0%} "
                   f"of the synthetic listings the full cascade detects; "
                   f"{calibration['gate_pass_rate_negatives']:.0%} of the others pass)")
    if calibration.get("likeness_threshold") is not None:
        typer.echo(f"likeness:   {calibration['likeness_threshold']:.3f} (listings less like the synthetic ones skip "
                   f"the expensive stages; with the gate, {calibration['gate_kept_positives']:.1%} of detections kept)")
    counts = manifest.get("counts", {})
    typer.echo(f"brands:     {counts.get('brands')} brands, {counts.get('references')} references")
    prices = manifest.get("typical_prices", {})
    for brand, n in manifest.get("brands", {}).items():
        price = f", typical price {prices[brand]:.2f}" if brand in prices else ""
        typer.echo(f"  {brand}: {n}{price}")


@index_app.command("verify")
@domain_errors
def index_verify(index_dir: Path = typer.Argument(..., help="Index folder.")):
    """Check the published version's manifest against its seal and every file against the sha256 it records."""
    from .index import check_files, published_manifest
    from .index.manifest import is_sealed

    folder, manifest = published_manifest(index_dir)  # the pointer and the manifest's seal are checked here
    check_files(folder, manifest, hashes=True)
    seal = ("manifest.json matches manifest.sha256" if is_sealed(folder)
            else "manifest.json has no seal: published before manifests were sealed")
    typer.echo(f"ok: {folder} ({len(manifest.get('files', {}))} files match manifest.json; {seal})")


@index_app.command("add")
@domain_errors
def index_add(index_dir: Path = typer.Argument(..., help="Index folder (built with `matcher index build`)."),
              catalog_dir: Path = typer.Argument(..., help="Folder of <brand>/<image> photos: each brand in it is "
                                                           "added, or replaces the indexed brand of that name."),
              keep: Optional[int] = typer.Option(None, "--keep", min=1, help="Versions to keep (default: the index's)."),
              threads: Optional[int] = typer.Option(None, help="CPU threads for the CNN.")):
    """Add (or replace) the brands of CATALOG_DIR without a rebuild; publishes a new version.

    Only photos the index does not hold yet are embedded. Whitening and calibration stay as built.
    """
    from .building import add_to_index
    from .cascade import load_embedder_for

    published = add_to_index(index_dir, catalog_dir, embedder=load_embedder_for(index_dir, threads=threads),
                             keep=keep, progress=_say)
    typer.echo(str(published))


@index_app.command("remove")
@domain_errors
def index_remove(index_dir: Path = typer.Argument(..., help="Index folder."),
                 brands: List[str] = typer.Argument(..., help="Brand names to remove (as `matcher index info` lists them)."),
                 keep: Optional[int] = typer.Option(None, "--keep", min=1, help="Versions to keep (default: the index's).")):
    """Remove brands and their references from an index; publishes a new version."""
    from .building import remove_from_index

    typer.echo(str(remove_from_index(index_dir, brands, keep=keep, progress=_say)))


@index_app.command("gc")
@domain_errors
def index_gc(index_dir: Path = typer.Argument(..., help="Index folder."),
             keep: Optional[int] = typer.Option(None, "--keep", min=1,
                                                help="Versions to keep, the published one included (default: the index's, 3).")):
    """Delete old versions and debris left by interrupted builds/adds (the published version always stays)."""
    from .building import gc_index, index_versions

    removed = gc_index(index_dir, keep=keep)
    for path in removed:
        typer.echo(f"removed {path}")
    kept = index_versions(index_dir)
    names = ", ".join(v["name"] + (" (current)" if v["current"] else " (in use by a running process)"
                                   if v.get("in_use") else "") for v in kept)
    typer.echo(f"{len(removed)} removed; kept {len(kept)} version(s): {names}")


@app.command("scan")
@domain_errors
def scan_command(listings: Path = typer.Argument(..., help="Folder of listing images, or a .txt/.csv/.jsonl manifest."),
                 index: Path = typer.Option(..., "--index", "-i", help="Index folder."),
                 out: Path = typer.Option(..., "--out", "-o", help="Results file: .jsonl or .csv."),
                 top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Candidate brands kept per listing (JSONL 'matches')."),
                 resume: bool = typer.Option(False, help="Continue a killed scan into the same results file."),
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
                                                          "that failed to decode always stay)."),
                 report: Optional[Path] = typer.Option(None, "--report",
                                                       help="Also write an HTML report of the suspects here.")):
    """Scan listing images against an index; one result row per input, most suspicious first."""
    from .cascade import Matcher
    from .inputs import iter_listings
    from .scan import scan

    if not listings.exists():
        raise MatcherError(f"{listings}: listings folder or manifest not found")
    _check_scan_outputs(listings, index, out, report)
    matcher = Matcher.open(index, device=device, threads=threads)
    total = sum(1 for _ in iter_listings(listings)) if sys.stderr.isatty() else None
    if total:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("scanning", total=total)
            summary = scan(listings, matcher, out, top_k=top_k, resume=resume, batch_size=batch_size,
                           workers=workers, min_suspicion=min_suspicion, on_batch=lambda n: bar.advance(task, n))
    else:
        summary = scan(listings, matcher, out, top_k=top_k, resume=resume, batch_size=batch_size, workers=workers,
                       min_suspicion=min_suspicion)
    flagged = [r for r in summary.top if r["verdict"] != "no_match"]
    if flagged:
        typer.echo("top suspects (suspicion, score, verdict, brand, listing ~ reference):")
        for r in flagged:
            typer.echo(f"  {r['suspicion']:.3f}  {r['score']:.3f}  {r['verdict']:<12} {r['brand']:<24} "
                       f"{r['listing']}  ~ {r['reference']}")
    typer.echo(summary.line())
    typer.echo(f"results: {Path(out).resolve()}")
    if report is not None:
        _write_report(out, index, report, min_suspicion)


def _check_scan_outputs(listings: Path, index: Path, out: Path, report: Optional[Path]) -> None:
    """Refuse, before the model loads, a results file or report that would overwrite an input or the index."""
    from .scan import check_output

    source = ("listings folder" if listings.is_dir() else "listings manifest", listings)
    check_output(out, "results", inputs=[source], folders=[("index folder", index)])
    if report is not None:
        check_output(report, "report", inputs=[source, ("results file", out)], folders=[("index folder", index)])
        check_output(report.with_name(report.stem + "_files"), "report", inputs=[source, ("results file", out)],
                     folders=[("index folder", index)])


def _write_report(results: Path, index: Path, out: Path, min_suspicion: float) -> None:
    from .report import write_report

    written = write_report(results, index, out, min_suspicion=min_suspicion)
    typer.echo(written.line())


@app.command("report")
@domain_errors
def report_command(results: Path = typer.Argument(..., help="Results file of `matcher scan` (.jsonl or .csv)."),
                   index: Path = typer.Option(..., "--index", "-i", help="The index the scan used (for reference "
                                                                         "thumbnails)."),
                   out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
                   min_suspicion: float = typer.Option(0.0, "--min-suspicion", min=0.0, max=1.0,
                                                       help="Leave out suspects less suspicious than this.")):
    """Write an HTML report of a results file: suspects ranked by suspicion, evidence side by side."""
    _write_report(results, index, out, min_suspicion)


@app.command("eval")
@domain_errors
def eval_command(bench_dir: Path = typer.Argument(..., help="Benchmark folder (references/, queries/, ground_truth.csv)."),
                 work_dir: Path = typer.Option(Path("results/eval"), help="Where the index, results and scores go."),
                 reuse_index: bool = typer.Option(False, help="Reuse WORK_DIR/index if it exists."),
                 runtime: str = typer.Option("auto", help="The CNN runtime of the index built: " + RUNTIME_HELP),
                 as_json: bool = typer.Option(False, "--json", help="Print metrics as JSON.")):
    """Build an index of BENCH_DIR/references, scan BENCH_DIR/queries, print accuracy metrics."""
    from .evaluation import format_report, run_benchmark

    metrics = run_benchmark(bench_dir, work_dir, rebuild=not reuse_index, progress=_say,
                            runtime=_runtime(runtime))
    if as_json:
        typer.echo(json.dumps(metrics, indent=1))
    else:
        typer.echo(format_report(metrics))
        typer.echo(f"scan: {metrics['listings_per_second']:.1f} listings/s; scores: {Path(work_dir) / 'scores.csv'}")


@app.command("serve")
@domain_errors
def serve_command(index: Path = typer.Option(..., "--index", "-i", help="Index folder to serve."),
                  host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
                  port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
                  max_batch_size: int = typer.Option(16, min=1, help="Images of concurrent requests matched in "
                                                                     "one CNN batch."),
                  max_batch_wait_ms: float = typer.Option(5.0, min=0.0, help="How long a batch waits for more "
                                                                            "images, milliseconds."),
                  max_queue: int = typer.Option(256, min=1, help="Images waiting at most; beyond, 429."),
                  max_batch_images: int = typer.Option(32, min=1, help="Images one /v1/match/batch call may carry."),
                  max_upload_mb: float = typer.Option(20.0, min=0.001, help="Request body limit, megabytes."),
                  reload_interval: float = typer.Option(10.0, min=0.0, help="Seconds between checks for a newly "
                                                                           "published index version (0: never)."),
                  threads: Optional[int] = typer.Option(None, help="CPU threads for the CNN.")):
    """Serve the index over HTTP (docs/service.md); admin endpoints need the MATCHER_ADMIN_TOKEN variable."""
    import os

    from .index import published_manifest

    published_manifest(index)  # a missing or foreign folder is a one-line error before the server starts
    import uvicorn

    from .service import ADMIN_TOKEN_VARIABLE, ServiceSettings, create_app

    settings = ServiceSettings(max_batch_size=max_batch_size, max_batch_wait_ms=max_batch_wait_ms,
                               max_queue=max_queue, max_batch_images=max_batch_images, max_upload_mb=max_upload_mb,
                               reload_interval_s=reload_interval)
    service = create_app(index, settings, admin_token=os.environ.get(ADMIN_TOKEN_VARIABLE) or None, threads=threads)
    uvicorn.run(service, host=host, port=port, log_level="info")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
