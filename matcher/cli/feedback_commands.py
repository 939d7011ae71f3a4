"""`matcher index feedback | disable | enable`: the analyst's decisions as new index versions (issue #29)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import _say, domain_errors, index_app

KEEP_HELP = "Versions to keep (default: the index's)."


@index_app.command("feedback")
@domain_errors
def index_feedback(index_dir: Path = typer.Argument(..., help="Index folder."),
                   decisions: Path = typer.Argument(..., help="CSV with listing, brand, label (false_positive or "
                                                              "counterfeit) and optional note columns."),
                   results: Path = typer.Option(..., "--results", "-r",
                                                help="The `matcher scan` results file (.jsonl, .csv) the listings "
                                                     "come from: it resolves listing paths and ids to images."),
                   keep: Optional[int] = typer.Option(None, "--keep", min=1, help=KEEP_HELP),
                   threads: Optional[int] = typer.Option(None, help="CPU threads for the CNN.")):
    """Publish a version that learns from DECISIONS: false positives stop matching their brand (and so do
    near-duplicates of them), counterfeit photos join the brand as known fakes. Logged in decisions.jsonl."""
    from ..building.feedback import feedback_index
    from ..scan import read_results

    rows = read_results(results)
    published = feedback_index(index_dir, decisions, rows, results, threads=threads, keep=keep, progress=_say)
    typer.echo(str(published))


@index_app.command("disable")
@domain_errors
def index_disable(index_dir: Path = typer.Argument(..., help="Index folder."),
                  references: List[str] = typer.Argument(..., help="References to disable, by their path as "
                                                                   "results rows and `index info --references` "
                                                                   "name them (e.g. Brand/photo.jpg)."),
                  keep: Optional[int] = typer.Option(None, "--keep", min=1, help=KEEP_HELP)):
    """Stop references matching anything without deleting them (a photo that floods matches); publishes a
    new version."""
    from ..building.feedback import set_enabled

    typer.echo(str(set_enabled(index_dir, references, False, keep=keep, progress=_say)))


@index_app.command("enable")
@domain_errors
def index_enable(index_dir: Path = typer.Argument(..., help="Index folder."),
                 references: List[str] = typer.Argument(..., help="Disabled references to enable again, by path."),
                 keep: Optional[int] = typer.Option(None, "--keep", min=1, help=KEEP_HELP)):
    """Let disabled references match again; publishes a new version."""
    from ..building.feedback import set_enabled

    typer.echo(str(set_enabled(index_dir, references, True, keep=keep, progress=_say)))
