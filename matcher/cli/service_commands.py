"""`matcher eval` (accuracy on a benchmark folder) and `matcher serve` (the HTTP service)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .common import RUNTIME_HELP, _runtime, _say, app, domain_errors


@app.command("eval")
@domain_errors
def eval_command(bench_dir: Path = typer.Argument(..., help="Benchmark folder (references/, queries/, ground_truth.csv)."),
                 work_dir: Path = typer.Option(Path("results/eval"), help="Where the index, results and scores go."),
                 reuse_index: bool = typer.Option(False, help="Reuse WORK_DIR/index if it exists."),
                 runtime: str = typer.Option("auto", help="The CNN runtime of the index built: " + RUNTIME_HELP),
                 as_json: bool = typer.Option(False, "--json", help="Print metrics as JSON.")):
    """Build an index of BENCH_DIR/references, scan BENCH_DIR/queries, print accuracy metrics."""
    from ..evaluation import format_report, run_benchmark

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

    from ..index import published_manifest

    published_manifest(index)  # a missing or foreign folder is a one-line error before the server starts
    import uvicorn

    from ..service import ADMIN_TOKEN_VARIABLE, ServiceSettings, create_app

    settings = ServiceSettings(max_batch_size=max_batch_size, max_batch_wait_ms=max_batch_wait_ms,
                               max_queue=max_queue, max_batch_images=max_batch_images, max_upload_mb=max_upload_mb,
                               reload_interval_s=reload_interval)
    service = create_app(index, settings, admin_token=os.environ.get(ADMIN_TOKEN_VARIABLE) or None, threads=threads)
    uvicorn.run(service, host=host, port=port, log_level="info")
