"""Parquet listings manifests: a ``path`` column (string) and any other columns, read a row group at a time.

The same listings as a CSV/JSONL manifest with those columns: relative paths resolve against the manifest's folder,
other columns are carried into the results as text (numbers as ``str(value)``, null as '', booleans
'true'/'false', lists and structs as compact JSON, like a JSONL manifest's values). A listing's ``line`` is its
1-based row number, so errors read ``file:row:column``. pyarrow is imported here only (a core dependency, but
scans of folders and text manifests never load it).
"""
from __future__ import annotations

import datetime
import json
import pathlib
from typing import Iterator

from matcher.errors import ListingsError

ROWS_PER_READ = 4096  # rows decoded at once: memory stays flat in the manifest's length


def parquet_columns(src: pathlib.Path) -> list[str]:
    """The manifest's column names in file order, ``path`` included; ListingsError if it is not Parquet."""
    return list(_schema(src).names)


def parquet_records(src: pathlib.Path) -> Iterator[tuple[int, str, dict[str, str]]]:
    """Yield (row, path as written, other columns as text) of each row, in file order; row is 1-based."""
    import pyarrow.parquet as pq

    names = parquet_columns(src)
    if "path" not in names:
        raise ListingsError(f"{src}:1:1: Parquet manifest has no 'path' column; columns found: "
                            f"{', '.join(repr(n) for n in names) or '(none)'}")
    path_col = names.index("path") + 1
    position = 0
    try:
        batches = pq.ParquetFile(src).iter_batches(batch_size=ROWS_PER_READ)
        for batch in batches:
            columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
            for i, raw in enumerate(columns["path"]):
                row = position + 1
                if not isinstance(raw, str):
                    kind = "null" if raw is None else type(raw).__name__
                    raise ListingsError(f"{src}:{row}:{path_col}: 'path' must be a string (got {kind})")
                raw = raw.strip()
                if not raw:
                    raise ListingsError(f"{src}:{row}:{path_col}: empty 'path'")
                fields = {name: field_text(values[i]) for name, values in columns.items() if name != "path"}
                yield row, raw, fields
                position += 1
    except OSError as exc:  # pyarrow's ArrowInvalid/ArrowIOError are OSError/ValueError subclasses
        raise ListingsError(f"{src}: cannot read Parquet manifest: {exc}") from None
    except ValueError as exc:
        raise ListingsError(f"{src}: damaged Parquet manifest: {exc}") from None


def field_text(value: object) -> str:
    """A manifest value (a JSONL value or a Parquet cell) as the str stored in ``Listing.fields``: strings as they
    are, numbers ``str(value)``, null '', booleans 'true'/'false', dates ISO text, lists and objects compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return json.dumps(value, ensure_ascii=False, default=str)


def _schema(src: pathlib.Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(src)
    except (OSError, ValueError) as exc:
        raise ListingsError(f"{src}: not a readable Parquet manifest ({exc})") from None
