"""Where a scan writes its rows before they reach the results file the user asked for.

JSONL and CSV results are written in place, line by line (``writers.py``). A Parquet file cannot grow line by
line, nor survive a kill half-written, so a scan to ``results.parquet`` writes its rows to a hidden JSONL spool
beside it (``.results.parquet.partial.jsonl``), which ``--resume`` continues like any JSONL file; once every
listing has its row (and the spool is ranked), ``finish_results`` turns the spool into the Parquet file
atomically and deletes it. Resuming a scan whose Parquet file is already finished re-creates the spool from it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .chunks import chunked
from .parquet_results import iter_parquet_rows, results_schema, rows_to_table, write_parquet, ROWS_PER_GROUP
from .writers import NUMBER_FIELDS, iter_records, open_writer, result_format


def staged_results(path: str | os.PathLike, *, resume: bool) -> Path:
    """The file a scan to ``path`` writes its rows to: ``path`` itself, or the JSONL spool of a Parquet file.

    With ``resume`` and a finished Parquet file but no spool, the spool is re-created from the file's rows (so
    the scan finds every listing done, or continues where a scan of a longer source stopped).
    """
    path = Path(path)
    if result_format(path) != "parquet":
        return path
    spool = path.with_name(f".{path.name}.partial.jsonl")
    if resume and path.is_file() and not spool.exists():
        with open_writer(spool) as writer:
            for row in iter_parquet_rows(path):
                writer.write(row)
    return spool


def finish_results(staged: str | os.PathLike, path: str | os.PathLike, columns: Sequence[str]) -> None:
    """Turn the spool ``staged`` into the Parquet file ``path`` (row order kept), then delete it; a no-op for
    JSONL and CSV results (``staged`` is then ``path``).

    columns : the results' columns before ``position`` and ``matches`` (``ResultWriter.columns``)
    """
    staged, path = Path(staged), Path(path)
    if staged == path:
        return
    schema = results_schema(columns, NUMBER_FIELDS)
    rows = (value for _, value in iter_records(staged, "jsonl") if value is not None)
    tables = (rows_to_table(list(chunk), schema) for chunk in chunked(rows, ROWS_PER_GROUP))
    write_parquet(path, tables, schema)
    staged.unlink()
