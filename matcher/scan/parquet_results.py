"""Results as Parquet: the rows of a JSONL/CSV results file, typed, with ``matches`` as a list of structs.

Both engines write this format: the local scan (``--out results.parquet``: it scans into a hidden JSONL spool,
which a killed scan resumes, and turns it into Parquet once every listing has its row) and the Ray engine (one
``part-NNNNN.parquet`` per shard). Columns, in order: the results file's columns (text, except the numeric ones:
float64), ``position`` (int64), ``matches`` (list of {brand, reference, score, copy_score, inliers, keypoints}).
Reading a file back gives the dicts a JSONL file gives (a match without keypoints has no ``keypoints`` key).
pyarrow is imported lazily: scans to JSONL or CSV never load it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..errors import MatcherError

ROWS_PER_GROUP = 8192  # rows per Parquet row group (and per read): memory stays flat in the file's length


def results_schema(columns: Sequence[str], number_fields: Sequence[str]):
    """The pyarrow schema of a results table: ``columns`` (floats for ``number_fields``, else text), position,
    matches."""
    import pyarrow as pa

    match = pa.struct([("brand", pa.string()), ("reference", pa.string()), ("score", pa.float64()),
                       ("copy_score", pa.float64()), ("inliers", pa.int64()),
                       ("keypoints", pa.list_(pa.list_(pa.float64())))])
    fields = [pa.field(name, pa.float64() if name in number_fields else pa.string()) for name in columns]
    return pa.schema(fields + [pa.field("position", pa.int64()), pa.field("matches", pa.list_(match))])


def rows_to_table(rows: Sequence[dict], schema):
    """Result rows (dicts as ``result_row`` makes them) -> a pyarrow Table of ``schema``."""
    import pyarrow as pa

    data = {}
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if pa.types.is_string(field.type):
            values = [_text(v) for v in values]
        data[field.name] = values
    return pa.Table.from_pydict(data, schema=schema)


def write_parquet(path: str | os.PathLike, tables: Iterable, schema) -> int:
    """Write tables of ``schema`` to ``path`` atomically (a hidden temporary file, fsynced, then renamed).

    Returns the number of rows written. Raises MatcherError naming the file when it cannot be written.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    temp = path.with_name(f".{path.name}.writing")
    rows = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(temp, schema) as writer:
            for table in tables:
                writer.write_table(table, row_group_size=ROWS_PER_GROUP)
                rows += table.num_rows
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise MatcherError(f"{path}: cannot write Parquet results: {exc.strerror or exc}") from None
    return rows


def iter_parquet_rows(path: str | os.PathLike) -> Iterator[dict]:
    """The rows of a Parquet results file as JSONL-like dicts, a row group at a time."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=ROWS_PER_GROUP)
        for batch in batches:
            for row in batch.to_pylist():
                for match in row.get("matches") or ():
                    if match.get("keypoints") is None:
                        match.pop("keypoints", None)
                if row.get("matches") is None:
                    row.pop("matches", None)
                yield row
    except (OSError, ValueError) as exc:
        raise MatcherError(f"{path}: not a readable Parquet results file ({exc})") from None


def parquet_columns(path: str | os.PathLike) -> list[str]:
    """Column names of a Parquet results file."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError) as exc:
        raise MatcherError(f"{path}: not a readable Parquet results file ({exc})") from None


def _text(value: object) -> str | None:
    """A row value as the text of a string column (None stays null; lists and dicts become JSON)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
