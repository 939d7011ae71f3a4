"""Rank a finished results file by suspicion, in place, without holding its rows in memory.

A scan writes rows in input order (so a killed scan can resume); once every listing has its row,
``rank_results`` rewrites the file most suspicious first: it reads each row's suspicion, position and byte
range (16 bytes per row), sorts those, copies the rows into a temporary file in that order, fsyncs it and
replaces the original atomically. Rows that failed to decode (no suspicion) go last, in input order.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MatcherError
from .writers import iter_records, result_format


def rank_results(path: str | os.PathLike, *, min_suspicion: float = 0.0) -> int:
    """Sort a results file (.jsonl or .csv) by suspicion, highest first, then by position.

    min_suspicion : drop decoded rows whose suspicion is below it (failed rows are always kept: every input
        that could not be read stays visible)
    Returns the number of rows kept.
    """
    path = Path(path)
    fmt = result_format(path)
    keys, positions, starts, ends = [], [], [], []
    header_end, start, header = 0, 0, None
    for end, value in iter_records(path, fmt):
        if value is None:
            start = end
            continue
        if fmt == "csv" and header is None:
            header, header_end, start = value, end, end
            continue
        row = value if fmt == "jsonl" else dict(zip(header, value))
        suspicion = _number(row.get("suspicion"))
        failed = row.get("status") != "ok"
        if failed or suspicion >= min_suspicion:
            keys.append(-1.0 if failed else suspicion)
            positions.append(int(row["position"]))
            starts.append(start)
            ends.append(end)
        start = end
    order = np.lexsort((np.asarray(positions, np.int64), -np.asarray(keys, np.float64)))
    temp = path.with_name(f".{path.name}.ranking")
    try:
        with open(path, "rb") as source, open(temp, "wb") as target:
            target.write(source.read(header_end))
            for i in order:
                source.seek(starts[i])
                target.write(source.read(ends[i] - starts[i]))
            target.flush()
            os.fsync(target.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise MatcherError(f"{path}: cannot rewrite results in suspicion order: {exc.strerror}") from None
    return len(order)


def _number(value) -> float:
    """A suspicion cell (float, numeric text, '' or None) -> float; unknown counts as 0."""
    try:
        return float(value) if value not in (None, "") else 0.0
    except ValueError:
        return 0.0
