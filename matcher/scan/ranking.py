"""Rank a finished results file by suspicion, in place, without holding its rows in memory.

A scan writes rows in input order (so a killed scan can resume); once every listing has its row,
``rank_results`` rewrites the file most suspicious first: it reads each row's suspicion, position and byte
range (16 bytes per row), sorts those, copies the rows into a temporary file in that order, fsyncs it and
replaces the original atomically. Rows that failed to decode (no suspicion) go last, in input order. The same
pass fills in the rows' ``cluster_id`` (``clusters.py``), known only once every listing has its row.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import MatcherError
from .writers import _csv_line, _jsonl_line, iter_records, result_format


def rank_results(path: str | os.PathLike, *, min_suspicion: float = 0.0,
                 cluster_ids: Mapping[int, str] | None = None, reorder: bool = True) -> int:
    """Sort a results file (.jsonl or .csv) by suspicion, highest first, then by position.

    min_suspicion : drop decoded rows whose suspicion is below it (failed rows are always kept: every input
        that could not be read stays visible)
    cluster_ids : position -> cluster id written into those rows' ``cluster_id`` (the others keep theirs)
    reorder : False keeps the rows in file order (only fills in cluster ids and drops rows)
    Returns the number of rows kept.
    """
    path = Path(path)
    fmt = result_format(path)
    keys, positions, starts, ends = [], [], [], []
    header_end, start, header = 0, 0, None
    cluster_ids = cluster_ids or {}
    rewritten: dict[int, bytes] = {}  # row number -> the row with its cluster id
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
            if int(row["position"]) in cluster_ids:
                rewritten[len(keys)] = _with_cluster(fmt, value, header, cluster_ids[int(row["position"])])
            keys.append(-1.0 if failed else suspicion)
            positions.append(int(row["position"]))
            starts.append(start)
            ends.append(end)
        start = end
    order = (np.lexsort((np.asarray(positions, np.int64), -np.asarray(keys, np.float64))) if reorder
             else np.arange(len(keys)))
    temp = path.with_name(f".{path.name}.ranking")
    try:
        with open(path, "rb") as source, open(temp, "wb") as target:
            target.write(source.read(header_end))
            for i in order:
                if i in rewritten:
                    target.write(rewritten[i])
                    continue
                source.seek(starts[i])
                target.write(source.read(ends[i] - starts[i]))
            target.flush()
            os.fsync(target.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise MatcherError(f"{path}: cannot rewrite results in suspicion order: {exc.strerror}") from None
    return len(order)


def _with_cluster(fmt: str, value, header: list[str] | None, cluster: str) -> bytes:
    """One results record (a JSONL object, or CSV cells under ``header``) with its ``cluster_id`` set, as bytes."""
    if fmt == "jsonl":
        return _jsonl_line(dict(value, cluster_id=cluster))
    cells = list(value)
    cells[header.index("cluster_id")] = cluster
    return _csv_line(cells)


def _number(value) -> float:
    """A suspicion cell (float, numeric text, '' or None) -> float; unknown counts as 0."""
    try:
        return float(value) if value not in (None, "") else 0.0
    except ValueError:
        return 0.0
