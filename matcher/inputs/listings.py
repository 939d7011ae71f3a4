"""Where a scan's inputs come from: a folder of images or a manifest file.

A *listing* is one image to check against the catalog. Listings come from either

* a folder, searched recursively for image files, or
* a manifest: a ``.txt`` file with one path per line, or a ``.csv`` / ``.jsonl``
  / ``.parquet`` file with a ``path`` column (other columns such as ``listing_id``,
  ``title`` or ``price`` are carried into the results).

Every listing gets a ``position``: its 0-based ordinal among the listings the
source yields. A resumed scan uses it to know which inputs are already done,
so it stays correct even when two manifest rows name the same image.
Listings are streamed: a folder is read one directory at a time and a
manifest one line at a time.

Nothing is lost: every folder entry named like an image is a listing (a FIFO
or dangling link fails when read, with its reason; see ``walk.py``) and what a
walk leaves out is counted (``WalkReport``); a manifest line naming an impossible
path (NUL byte, symlink loop) is a listing too. A manifest is a regular file of
lines up to ``MAX_LINE_BYTES``; CSV is strict (an unterminated quote is an error
at its ``file:line:column``, not a field swallowing the rest of the file).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import types
from typing import Iterator, Mapping

from matcher.errors import ListingsError
from .files import open_regular
from .parquet_manifest import field_text, parquet_columns, parquet_records
from .strictcsv import Feed, csv_rows, strict_reader
from .walk import IMAGE_SUFFIXES, WalkReport, walk_images

__all__ = ["IMAGE_SUFFIXES", "MAX_LINE_BYTES", "Listing", "WalkReport", "iter_listings", "manifest_columns",
           "column_number", "walk_report"]

MANIFEST_SUFFIXES = (".txt", ".csv", ".jsonl", ".parquet")
MAX_LINE_BYTES = 1 << 20  # longest manifest line, its line ending included


@dataclasses.dataclass(frozen=True)
class Listing:
    """One input image of a scan.

    Attributes
    ----------
    listing : str
        The key written in results: the path relative to the scanned folder
        ('/'-separated), or the path exactly as written in the manifest.
        It is *not* guaranteed unique (a manifest may repeat a path).
    path : pathlib.Path
        Absolute path to read. It may not exist: a manifest row naming a
        missing image is reported by the scan, not here.
    fields : Mapping[str, str]
        Extra manifest columns (``listing_id``, ``title``, ...), read-only;
        empty for folders and ``.txt`` manifests.
    position : int
        0-based ordinal of this listing in its source (blank and comment lines
        are not counted). Unique per source; results are keyed by it on resume.
    line : int
        1-based line of the manifest where the listing ends (0 for folders), for error messages.
    """

    listing: str
    path: pathlib.Path
    fields: Mapping[str, str] = dataclasses.field(hash=False)
    position: int
    line: int = dataclasses.field(default=0, compare=False)


def iter_listings(source: str | os.PathLike, *, skipped: WalkReport | None = None) -> Iterator[Listing]:
    """Yield the listings of a folder or a manifest file, in a stable order.

    Parameters
    ----------
    source : str or os.PathLike
        A folder, searched recursively for entries with an image suffix (any
        case, see ``IMAGE_SUFFIXES``), whatever their type (a dangling link or
        a FIFO fails when read). Hidden files and folders are skipped;
        symlinks are followed but each real folder is walked once. Entries are
        sorted by name within each folder. An empty folder yields nothing.
        Or a manifest: ``.txt`` (one path per line; blank lines and '#' lines
        skipped), ``.csv``, ``.jsonl`` or ``.parquet`` (a ``path`` column/key
        required; see ``parquet_manifest.py``).
        Relative paths resolve against the manifest's folder.
    skipped : WalkReport, optional
        For a folder: counts what the walk leaves out, as it goes (complete once
        the iterator is exhausted). Untouched for a manifest.

    Raises
    ------
    ListingsError
        At once for a missing source or unsupported suffix; while iterating
        for a bad line (no ``path`` column, not a JSON object, empty path, ...).
    """
    src = pathlib.Path(source)
    kind = _source_kind(src)
    if kind == "folder":
        return _iter_folder(src, WalkReport() if skipped is None else skipped)
    if kind == ".txt":
        return _iter_txt(src)
    if kind == ".csv":
        return _iter_csv(src)
    if kind == ".parquet":
        return _iter_parquet(src)
    return _iter_jsonl(src)


def manifest_columns(source: str | os.PathLike) -> list[str]:
    """Return the extra columns a manifest carries, excluding ``path``.

    CSV and Parquet: the columns in file order. JSONL: the union of keys in
    first-seen order (reads the whole file once, checking every line).
    Folders and ``.txt`` manifests: ``[]``.
    """
    src = pathlib.Path(source)
    kind = _source_kind(src)
    if kind == ".csv":
        with _open_lines(src) as lines:
            names, _ = _csv_header(src, *strict_reader(lines))
        return [n for n in names if n and n != "path"]
    if kind == ".parquet":
        return [n for n in parquet_columns(src) if n and n != "path"]
    if kind == ".jsonl":
        seen: dict[str, None] = {}
        for item in _iter_jsonl(src):
            seen.update(dict.fromkeys(item.fields))
        return list(seen)
    return []


def column_number(source: str | os.PathLike, name: str) -> int:
    """1-based column of ``name`` in a CSV or Parquet manifest (for ``file:line:column`` errors); 1 otherwise."""
    src = pathlib.Path(source)
    kind = _source_kind(src)
    if kind == ".parquet":
        names = parquet_columns(src)
        return names.index(name) + 1 if name in names else 1
    if kind != ".csv":
        return 1
    with _open_lines(src) as lines:
        names, _ = _csv_header(src, *strict_reader(lines))
    return names.index(name) + 1 if name in names else 1


def walk_report(source: str | os.PathLike) -> WalkReport:
    """What a walk of a listings folder leaves out (see ``WalkReport``; its ``line()`` for a summary); an
    empty report for a manifest. Walks the folder again: ``iter_listings(..., skipped=...)`` counts the
    scan's own walk."""
    src = pathlib.Path(source)
    report = WalkReport()
    if _source_kind(src) == "folder":
        for _ in walk_images(str(src.resolve()), report):
            pass
    return report


# --- sources ---------------------------------------------------------------


def _source_kind(src: pathlib.Path) -> str:
    """Return 'folder' or the manifest suffix, or raise ListingsError."""
    if src.is_dir():
        return "folder"
    if not src.exists():
        raise ListingsError(f"{src}: no such listings folder or manifest file")
    suffix = src.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ListingsError(
            f"{src}: unsupported listings manifest type {suffix or '(no suffix)'!r}; "
            f"use a folder or a {', '.join(MANIFEST_SUFFIXES)} file"
        )
    return suffix


def _iter_folder(root: pathlib.Path, skipped: WalkReport) -> Iterator[Listing]:
    """Yield the entries named like images under ``root`` (see ``iter_listings`` and ``walk.py``)."""
    base = root.resolve()
    for position, rel in enumerate(walk_images(str(base), skipped)):
        yield Listing(listing=rel, path=base / rel, fields=types.MappingProxyType({}), position=position)


def _iter_txt(src: pathlib.Path) -> Iterator[Listing]:
    """Yield listings of a ``.txt`` manifest: one path per line."""
    base = src.resolve().parent
    position = 0
    with _open_lines(src) as lines:
        for lineno, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            yield Listing(text, _resolve(base, text), types.MappingProxyType({}), position, lineno)
            position += 1


def _iter_csv(src: pathlib.Path) -> Iterator[Listing]:
    """Yield listings of a ``.csv`` manifest with a ``path`` column."""
    base = src.resolve().parent
    for position, (line, raw, fields) in enumerate(_csv_records(src)):
        yield Listing(raw, _resolve(base, raw), types.MappingProxyType(fields), position, line)


def _iter_parquet(src: pathlib.Path) -> Iterator[Listing]:
    """Yield listings of a ``.parquet`` manifest with a ``path`` column; ``line`` is the 1-based row."""
    base = src.resolve().parent
    for position, (row, raw, fields) in enumerate(parquet_records(src)):
        yield Listing(raw, _resolve(base, raw), types.MappingProxyType(fields), position, row)


def _csv_records(src: pathlib.Path) -> Iterator[tuple[int, str, dict[str, str]]]:
    """Yield (line, path, extra fields) of each non-blank row of a ``.csv`` manifest, checked."""
    with _open_lines(src) as lines:
        feed, reader = strict_reader(lines)
        names, path_col = _csv_header(src, feed, reader)
        extras = [(i, n) for i, n in enumerate(names) if i != path_col and n]
        for row in csv_rows(src, feed, reader):
            if not any(cell.strip() for cell in row):
                continue  # blank line
            line = reader.line_num
            if len(row) > len(names):
                raise ListingsError(
                    f"{src}:{line}:{len(names) + 1}: row has {len(row)} fields "
                    f"but the header has {len(names)}"
                )
            raw = row[path_col].strip() if path_col < len(row) else ""
            if not raw:
                raise ListingsError(f"{src}:{line}:{path_col + 1}: empty 'path'")
            yield line, raw, {name: (row[i] if i < len(row) else "") for i, name in extras}


def _csv_header(src: pathlib.Path, feed: Feed, reader) -> tuple[list[str], int]:
    """Read a CSV header; return (column names, index of 'path')."""
    header = next(csv_rows(src, feed, reader), None)
    if header is None:
        raise ListingsError(f"{src}:1:1: CSV manifest is empty; it needs a header row with a 'path' column")
    names = [h.strip() for h in header]
    if "path" not in names:
        found = ", ".join(repr(n) for n in names) or "(none)"
        raise ListingsError(f"{src}:1:1: CSV manifest has no 'path' column; columns found: {found}")
    return names, names.index("path")


def _iter_jsonl(src: pathlib.Path) -> Iterator[Listing]:
    """Yield listings of a ``.jsonl`` manifest: one JSON object per line."""
    base = src.resolve().parent
    position = 0
    with _open_lines(src) as lines:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line, strict=False)  # a control character (NUL...) in a string is kept
            except json.JSONDecodeError as exc:
                raise ListingsError(f"{src}:{lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise ListingsError(f"{src}:{lineno}:1: line is not a JSON object (got {_json_type(obj)})")
            raw = obj.get("path")
            if raw is None:
                raise ListingsError(f"{src}:{lineno}:1: JSON object has no \"path\" key")
            if not isinstance(raw, str):
                raise ListingsError(f"{src}:{lineno}:1: \"path\" must be a string (got {_json_type(raw)})")
            raw = raw.strip()
            if not raw:
                raise ListingsError(f"{src}:{lineno}:1: empty \"path\"")
            fields = {str(k): field_text(v) for k, v in obj.items() if k != "path"}
            yield Listing(raw, _resolve(base, raw), types.MappingProxyType(fields), position, lineno)
            position += 1


# --- helpers ---------------------------------------------------------------


@contextlib.contextmanager
def _open_lines(src: pathlib.Path) -> Iterator[Iterator[str]]:
    """Open a manifest; give an iterator over its lines as str.

    Each line is decoded on its own, so a bad byte is reported with its exact
    line and column. Line endings are kept (as ``csv`` wants); a UTF-8 BOM at
    the start is dropped. Only a regular file is opened (never blocking on a FIFO).
    """
    try:
        fd, _ = open_regular(src)
    except OSError as exc:
        raise ListingsError(f"{src}: cannot read manifest: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as file:
        yield _decoded_lines(src, file)


def _decoded_lines(src: pathlib.Path, file) -> Iterator[str]:
    """Yield the lines of a binary file decoded as UTF-8, each at most MAX_LINE_BYTES."""
    for lineno, raw in enumerate(iter(lambda: file.readline(MAX_LINE_BYTES + 1), b""), start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise ListingsError(f"{src}:{lineno}:1: line longer than {MAX_LINE_BYTES} bytes (not a manifest?)")
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ListingsError(f"{src}:{lineno}:{exc.start + 1}: not valid UTF-8 text") from None


def _resolve(base: pathlib.Path, raw: str) -> pathlib.Path:
    """Resolve a manifest path against the manifest's folder (kept unresolved where it cannot be: a symlink
    loop or a NUL byte; reading it then fails with the reason)."""
    path = pathlib.Path(raw)
    if not path.is_absolute():
        path = base / path
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path


def _json_type(value: object) -> str:
    """Name a decoded JSON value's type the way JSON does."""
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), "null")
