"""`matcher rescan`: re-check a past scan's listings against a newer index version, reusing their stored
descriptors (``scan.rescan``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import MatcherError
from .common import app, domain_errors


@app.command("rescan")
@domain_errors
def rescan_command(results: Path = typer.Argument(..., help="Results of an earlier `matcher scan` (.jsonl, .csv, "
                                                            ".parquet, or the folder of an --engine ray scan; its "
                                                            "RESULTS.descriptors.npy and .json beside it)."),
                   index: Path = typer.Option(..., "--index", "-i", help="Index folder (its newer version)."),
                   out: Path = typer.Option(..., "--out", "-o", help="New results file: .jsonl or .csv."),
                   top_k: int = typer.Option(5, "--top-k", "-k", min=1,
                                             help="Candidate brands kept per re-judged listing (JSONL 'matches')."),
                   threads: Optional[int] = typer.Option(None, help="CPU threads for the CNN."),
                   device: str = typer.Option("cpu", help="Torch device for the CNN, e.g. cpu or cuda.")):
    """Re-check the listings of RESULTS against the index's published version; images are read again only for
    the listings the new version might judge differently."""
    from ..cascade import Matcher
    from ..scan import check_output, rescan

    if not results.exists():
        raise MatcherError(f"{results}: results file not found")
    check_output(out, "re-scanned results", inputs=[("results file", results)], folders=[("index folder", index)])
    matcher = Matcher.open(index, device=device, threads=threads)
    summary = rescan(results, matcher, out, top_k=top_k)
    typer.echo(summary.line())
    typer.echo(f"results: {Path(out).resolve()}")
