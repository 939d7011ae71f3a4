"""Results files: one row per listing, written as the scan goes, resumable.

Two formats, chosen by the file's suffix:

* ``.jsonl``: one JSON object per line. Keys, in this order: ``RESULT_FIELDS``,
  the extra fields, ``position``, then ``matches`` (a list of dicts) when the
  row has one.
* ``.csv``: a header row ``RESULT_FIELDS + extras + ["position", "matches"]``.
  ``matches`` is stored as JSON text in its one column, so nothing is lost.

Every row carries ``position`` (the listing's ordinal in its source, see
``inputs.listings``). A scan killed at any moment and started again with
``resume=True`` reads the positions already written, drops a torn last line,
and appends the rest.
"""
from __future__ import annotations

import csv
import io
import json
import os
import pathlib
from typing import Iterator, Mapping, Sequence

from matcher.errors import MatcherError
from .parquet_results import iter_parquet_rows

RESULT_FIELDS = ["listing", "listing_id", "status", "error", "verdict", "brand", "reference", "score",
                 "suspicion", "explanation", "path", "cluster_id", "index_version", "model", "threshold"]
NUMBER_FIELDS = ("score", "suspicion", "threshold")
RESULT_SUFFIXES = (".jsonl", ".csv", ".parquet")  # a scan writes Parquet through a JSONL spool: staging.py
_CSV_SPECIAL = (",", '"', "\r", "\n")


def open_writer(
    path: str | os.PathLike, *, extra_fields: Sequence[str] = (), resume: bool = False
) -> "ResultWriter":
    """Open a results file for writing.

    Parameters
    ----------
    path : str or os.PathLike
        ``.jsonl`` or ``.csv`` file; its folder is created if needed.
    extra_fields : sequence of str
        Manifest columns to carry after ``RESULT_FIELDS``. Names already in
        ``RESULT_FIELDS`` (e.g. ``listing_id``) or ``position``/``matches``
        are not repeated; the row's value goes to the standard column.
    resume : bool
        False: an existing file is overwritten. True: an existing file is
        kept, a torn last line is cut off, and ``finished_positions`` tells
        which listings are already done.

    Raises
    ------
    MatcherError
        Unsupported suffix, unopenable file, or (resume) other CSV columns or
        a damaged line before the last one.
    """
    return ResultWriter(path, extra_fields=extra_fields, resume=resume)


class ResultWriter:
    """Writes result rows as whole lines. Use as a context manager.

    Attributes
    ----------
    path : pathlib.Path
    columns : list[str]
        ``RESULT_FIELDS`` + extra fields (without ``position``/``matches``).
    finished_positions : set[int]
        Positions already in the file when it was opened with ``resume=True``
        (not updated by ``write``).
    """

    def __init__(self, path: str | os.PathLike, *, extra_fields: Sequence[str] = (), resume: bool = False):
        self.path = pathlib.Path(path)
        self.format = result_format(self.path)
        if self.format == "parquet":
            raise MatcherError(f"{self.path}: a Parquet results file is written whole (scan into its spool, "
                               "see staging.py), not line by line")
        self.columns = result_columns(extra_fields)
        self.finished_positions: set[int] = set()
        needs_header = self.format == "csv"
        if resume and self.path.is_file():
            self.finished_positions, keep = _check_existing(self.path, self.format, self._csv_header())
            needs_header = self.format == "csv" and keep == 0
            if self.path.stat().st_size > keep:
                with open(self.path, "r+b") as f:
                    f.truncate(keep)
            mode = "ab"
        else:
            mode = "wb"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, mode)
        except OSError as exc:
            raise MatcherError(f"{self.path}: cannot open results file: {exc.strerror}") from None
        if needs_header:
            self._file.write(_csv_line(self._csv_header()))

    def write(self, row: Mapping[str, object]) -> None:
        """Append one row (RESULT_FIELDS + extras + ``position`` [+ ``matches``]).

        Missing fields are written empty (CSV) or null (JSONL); keys that are
        not columns are ignored. ``position`` (int) is required.
        """
        if self._file.closed:
            raise ValueError(f"{self.path}: writer is closed")
        position = row.get("position")
        if not isinstance(position, int) or isinstance(position, bool):
            raise ValueError(f"result row needs an int 'position', got {position!r}")
        matches = row.get("matches")
        if self.format == "jsonl":
            obj = {name: row.get(name) for name in self.columns}
            obj["position"] = position
            if matches is not None:
                obj["matches"] = list(matches)
            data = _jsonl_line(obj)
        else:
            cells = [_cell(row.get(name)) for name in self.columns]
            cells += [str(position), "" if matches is None else _to_json(list(matches))]
            data = _csv_line(cells)
        self._file.write(data)  # one call with the whole line

    def flush(self) -> None:
        """Push written rows to disk (``flush`` + ``os.fsync``)."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close; calling it twice is harmless."""
        if not self._file.closed:
            self.flush()
            self._file.close()

    def __enter__(self) -> "ResultWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _csv_header(self) -> list[str]:
        return self.columns + ["position", "matches"]


def read_results(path: str | os.PathLike) -> list[dict]:
    """Read a results file back as a list of dicts (``iter_results``)."""
    return list(iter_results(path))


def iter_results(path: str | os.PathLike) -> Iterator[dict]:
    """The rows of a results file, streamed (Parquet a row group at a time).

    ``path`` may be a sharded scan's folder (its part files' rows, shard by shard). JSONL and Parquet rows
    come back as written. CSV values are strings, except
    ``position`` (int), ``score`` and ``suspicion`` (float, or None when empty) and ``matches``
    (decoded from JSON; the key is left out when empty, as in JSONL).
    A torn last line is ignored.
    """
    path = pathlib.Path(path)
    if path.is_dir():  # the output folder of a sharded (--engine ray) scan
        parts = sorted(path.glob("part-*.parquet"))
        if not parts:
            raise MatcherError(f"{path}: a folder with no part-*.parquet: not the output of a sharded scan")
        for part in parts:
            yield from iter_parquet_rows(part)
        return
    fmt = result_format(path)
    if not path.is_file():
        raise MatcherError(f"{path}: no such results file")
    if fmt == "parquet":
        yield from iter_parquet_rows(path)
        return
    header = None
    for _, value in iter_records(path, fmt):
        if value is None:
            continue
        if fmt == "jsonl":
            yield value
        elif header is None:
            header = value
        else:
            yield _typed_csv_row(dict(zip(header, value)))


# --- helpers ---------------------------------------------------------------


def result_format(path: pathlib.Path) -> str:
    """Return 'jsonl', 'csv' or 'parquet' from the suffix, or raise MatcherError."""
    suffix = path.suffix.lower()
    if suffix not in RESULT_SUFFIXES:
        raise MatcherError(
            f"{path}: unsupported results file type {suffix or '(no suffix)'!r}; "
            f"use one of: {', '.join(RESULT_SUFFIXES)}"
        )
    return suffix[1:]


def result_columns(extra_fields: Sequence[str]) -> list[str]:
    """RESULT_FIELDS followed by the extra fields that are not already columns."""
    columns = list(RESULT_FIELDS)
    for name in extra_fields:
        if name not in columns and name not in ("position", "matches"):
            columns.append(name)
    return columns


def _csv_line(cells: Sequence[str]) -> bytes:
    """Format one CSV record ending in '\\n'.

    A cell holding ',', '"', '\\r' or '\\n' is quoted ('"' doubled); the others are written as they are
    (leading '=', spaces, tabs included), so any reader reads the same text back. (``csv.writer`` leaves a
    lone '\\r' unquoted when the line terminator is '\\n': the record would then end early.) Characters
    that are not UTF-8 (undecodable file names, held as surrogate escapes) are written as their raw bytes;
    another lone surrogate (a manifest's "\\ud800" escape) has no bytes and is written as that escape text.
    """
    line = ",".join(_csv_quote(cell) for cell in cells) + "\n"
    try:
        return line.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return line.encode("utf-8", "backslashreplace")


def _csv_quote(cell: str) -> str:
    if any(c in cell for c in _CSV_SPECIAL):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _jsonl_line(obj: dict) -> bytes:
    """One JSON line; non-ASCII kept as is, unless a file name holds surrogates (then all is \\u-escaped)."""
    line = json.dumps(obj, ensure_ascii=False, default=_json_default) + "\n"
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (an undecodable file name): escaped, it reads back the same
        return (json.dumps(obj, ensure_ascii=True, default=_json_default) + "\n").encode("ascii")


def _cell(value: object) -> str:
    """Turn a value into CSV cell text: None -> '', lists/dicts/arrays -> JSON."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)) or hasattr(value, "tolist"):
        return _to_json(value)
    return str(value)


def _to_json(value: object) -> str:
    """Compact JSON text, non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: object) -> object:
    """Make numpy scalars/arrays and paths JSON-friendly; anything else becomes str."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _typed_csv_row(row: dict) -> dict:
    """Parse position, score and matches of a CSV row read back as strings."""
    if row.get("position", "").isdigit():
        row["position"] = int(row["position"])
    for name in NUMBER_FIELDS:
        if name in row:
            try:
                row[name] = float(row[name]) if row[name] else None
            except ValueError:
                pass  # not a number: keep the text
    if row.get("matches"):
        row["matches"] = json.loads(row["matches"])
    else:
        row.pop("matches", None)
    return row


def _check_existing(path: pathlib.Path, fmt: str, header: list[str]) -> tuple[set[int], int]:
    """Scan an existing results file before resuming.

    Returns the positions found and the byte length of its complete, valid
    lines. Raises MatcherError when the CSV header differs from ``header``.
    """
    positions: set[int] = set()
    keep = 0
    found_header = None
    for end, value in iter_records(path, fmt):
        if fmt == "csv" and found_header is None:
            found_header = value
            if value != header:
                raise MatcherError(
                    f"{path}: cannot resume: its columns ({', '.join(value or [])}) differ from "
                    f"this scan's ({', '.join(header)}); write to a new file or drop --resume"
                )
        elif value is not None:
            positions.add(value["position"] if fmt == "jsonl" else int(value[found_header.index("position")]))
        keep = end
    return positions, keep


def iter_records(path: pathlib.Path, fmt: str) -> Iterator[tuple[int, object]]:
    """Yield ``(end_offset, value)`` for each complete, valid record of a results file.

    ``value`` is a dict (JSONL), a list of cells (CSV; the first is the
    header), or None for a blank line. A bad *last* record is a torn write
    and is silently left out; a bad record before it raises MatcherError.
    """
    header = None
    with open(path, "rb") as f:
        raw = _raw_records(f, fmt)
        current = next(raw, None)
        while current is not None:
            following = next(raw, None)
            lineno, end, data, complete = current
            try:
                if not complete:
                    raise ValueError("no trailing newline")
                value = _parse_record(fmt, data, header)
            except ValueError as exc:
                if following is None:
                    return  # torn last line: the writer was killed mid-write
                raise MatcherError(
                    f"{path}:{lineno}:1: damaged results line ({exc}); only the last line may be incomplete"
                ) from None
            if fmt == "csv" and header is None and value is not None:
                header = value
            yield end, value
            current = following


def _raw_records(f, fmt: str) -> Iterator[tuple[int, int, bytes, bool]]:
    """Split a binary file into records: ``(first line number, end offset, bytes, complete)``.

    A CSV record may span lines when a quoted cell holds a newline; it ends
    at a newline after an even number of '"' characters.
    """
    buf = b""
    first = offset = 0
    for lineno, line in enumerate(f, start=1):
        if not buf:
            first = lineno
        buf += line
        offset += len(line)
        if fmt == "csv" and buf.count(b'"') % 2:
            continue  # inside a quoted cell
        yield first, offset, buf, buf.endswith(b"\n")
        buf = b""
    if buf:
        yield first, offset, buf, False


def _parse_record(fmt: str, data: bytes, header: list[str] | None) -> object:
    """Parse one record; raise ValueError when it is not a valid result line."""
    text = data.decode("utf-8", "surrogateescape")  # raw bytes of an undecodable file name come back as written
    if not text.strip():
        return None
    if fmt == "jsonl":
        obj = json.loads(text)
        if not isinstance(obj, dict) or not isinstance(obj.get("position"), int):
            raise ValueError("not a JSON object with an int 'position'")
        return obj
    row = _csv_record(text)
    if header is not None:
        if len(row) != len(header):
            raise ValueError(f"{len(row)} fields, expected {len(header)}")
        if "position" in header:
            int(row[header.index("position")])
    return row


def _csv_record(text: str) -> list[str]:
    """The cells of one CSV record (``text`` ends with its newline).

    The csv module takes an unquoted '\\r' for the end of a line. This writer quotes every '\\r', but
    earlier versions did not: such a record reads as several rows, glued back here at each '\\r' (the
    record is one physical line, its quotes balanced, so nothing else can have split it).
    """
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise ValueError("not a CSV record")
    cells = list(rows[0])
    for row in rows[1:]:
        if not cells:
            cells = [""]
        following = row or [""]
        cells[-1] += "\r" + following[0]
        cells += following[1:]
    return cells
