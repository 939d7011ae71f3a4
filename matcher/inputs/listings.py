"""Where a scan's inputs come from: a folder of images or a manifest file.

A *listing* is one image to check against the catalog. Listings come from either

* a folder, searched recursively for image files, or
* a manifest: a ``.txt`` file with one path per line, or a ``.csv`` / ``.jsonl``
  file with a ``path`` column (other columns such as ``listing_id``, ``title``
  or ``price`` are carried into the results).

Every listing gets a ``position``: its 0-based ordinal among the listings the
source yields. A resumed scan uses it to know which inputs are already done,
so it stays correct even when two manifest rows name the same image.
Listings are streamed: a folder is read one directory at a time and a
manifest one line at a time.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import pathlib
import types
from typing import Iterator, Mapping

from matcher.errors import ListingsError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MANIFEST_SUFFIXES = (".txt", ".csv", ".jsonl")


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


def iter_listings(source: str | os.PathLike) -> Iterator[Listing]:
    """Yield the listings of a folder or a manifest file, in a stable order.

    Parameters
    ----------
    source : str or os.PathLike
        A folder, searched recursively for files with an image suffix (any
        case, see ``IMAGE_SUFFIXES``). Hidden files and folders are skipped;
        symlinks are followed but each real folder is walked once. Entries are
        sorted by name within each folder. An empty folder yields nothing.
        Or a manifest: ``.txt`` (one path per line; blank lines and '#' lines
        skipped), ``.csv`` or ``.jsonl`` (a ``path`` column/key required).
        Relative paths resolve against the manifest's folder.

    Raises
    ------
    ListingsError
        At once for a missing source or unsupported suffix; while iterating
        for a bad line (no ``path`` column, not a JSON object, empty path, ...).
    """
    src = pathlib.Path(source)
    kind = _source_kind(src)
    if kind == "folder":
        return _iter_folder(src)
    if kind == ".txt":
        return _iter_txt(src)
    if kind == ".csv":
        return _iter_csv(src)
    return _iter_jsonl(src)


def manifest_columns(source: str | os.PathLike) -> list[str]:
    """Return the extra columns a manifest carries, excluding ``path``.

    CSV: the header's columns in file order. JSONL: the union of keys in
    first-seen order (reads the whole file once, checking every line).
    Folders and ``.txt`` manifests: ``[]``.
    """
    src = pathlib.Path(source)
    kind = _source_kind(src)
    if kind == ".csv":
        with _open_lines(src) as lines:
            reader = csv.reader(lines)
            names, _ = _csv_header(src, reader)
        return [n for n in names if n and n != "path"]
    if kind == ".jsonl":
        seen: dict[str, None] = {}
        for item in _iter_jsonl(src):
            seen.update(dict.fromkeys(item.fields))
        return list(seen)
    return []


def column_number(source: str | os.PathLike, name: str) -> int:
    """1-based column of ``name`` in a CSV manifest's header (for ``file:line:column`` errors); 1 otherwise."""
    src = pathlib.Path(source)
    if _source_kind(src) != ".csv":
        return 1
    with _open_lines(src) as lines:
        names, _ = _csv_header(src, csv.reader(lines))
    return names.index(name) + 1 if name in names else 1


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


def _iter_folder(root: pathlib.Path) -> Iterator[Listing]:
    """Yield the image files under ``root`` (see ``iter_listings``)."""
    base = root.resolve()
    top = os.stat(base)
    visited = {(top.st_dev, top.st_ino)}
    for position, rel in enumerate(_walk(str(base), "", visited)):
        yield Listing(listing=rel, path=base / rel, fields=types.MappingProxyType({}), position=position)


def _walk(folder: str, prefix: str, visited: set) -> Iterator[str]:
    """Yield '/'-joined relative paths of images under ``folder``, sorted by name.

    ``visited`` holds (device, inode) of folders already walked, so a symlink
    loop or two links to one folder do not repeat files. Unreadable
    sub-folders are skipped, like ``os.walk`` does.
    """
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        if not prefix:
            raise ListingsError(f"{folder}: cannot read listings folder") from None
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        rel = prefix + entry.name
        try:
            if entry.is_dir():  # follows symlinks
                info = entry.stat()
                key = (info.st_dev, info.st_ino)
                if key not in visited:
                    visited.add(key)
                    yield from _walk(entry.path, rel + "/", visited)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                yield rel
        except OSError:  # broken symlink or vanished entry
            continue


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
    position = 0
    with _open_lines(src) as lines:
        reader = csv.reader(lines)
        names, path_col = _csv_header(src, reader)
        extras = [(i, n) for i, n in enumerate(names) if i != path_col and n]
        for row in _csv_rows(src, reader):
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
            fields = {name: (row[i] if i < len(row) else "") for i, name in extras}
            yield Listing(raw, _resolve(base, raw), types.MappingProxyType(fields), position, line)
            position += 1


def _csv_rows(src: pathlib.Path, reader) -> Iterator[list[str]]:
    """Yield a csv.reader's rows, turning csv.Error into ListingsError."""
    try:
        yield from reader
    except csv.Error as exc:
        raise ListingsError(f"{src}:{reader.line_num}:1: bad CSV: {exc}") from None


def _csv_header(src: pathlib.Path, reader) -> tuple[list[str], int]:
    """Read a CSV header; return (column names, index of 'path')."""
    header = next(_csv_rows(src, reader), None)
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
                obj = json.loads(line)
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
            fields = {str(k): _field_text(v) for k, v in obj.items() if k != "path"}
            yield Listing(raw, _resolve(base, raw), types.MappingProxyType(fields), position, lineno)
            position += 1


# --- helpers ---------------------------------------------------------------


@contextlib.contextmanager
def _open_lines(src: pathlib.Path) -> Iterator[Iterator[str]]:
    """Open a manifest; give an iterator over its lines as str.

    Each line is decoded on its own, so a bad byte is reported with its exact
    line and column. Line endings are kept (as ``csv`` wants); a UTF-8 BOM at
    the start is dropped.
    """
    try:
        file = open(src, "rb")
    except OSError as exc:
        raise ListingsError(f"{src}: cannot read manifest: {exc.strerror}") from None
    with file:
        yield _decoded_lines(src, file)


def _decoded_lines(src: pathlib.Path, file) -> Iterator[str]:
    """Yield the lines of a binary file decoded as UTF-8."""
    for lineno, raw in enumerate(file, start=1):
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ListingsError(f"{src}:{lineno}:{exc.start + 1}: not valid UTF-8 text") from None


def _resolve(base: pathlib.Path, raw: str) -> pathlib.Path:
    """Resolve a manifest path against the manifest's folder."""
    path = pathlib.Path(raw)
    if not path.is_absolute():
        path = base / path
    return path.resolve()


def _field_text(value: object) -> str:
    """Turn a JSON value into the str stored in ``Listing.fields``.

    Strings stay as they are, numbers become ``str(value)``, null becomes '',
    booleans 'true'/'false', arrays and objects their compact JSON text.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _json_type(value: object) -> str:
    """Name a decoded JSON value's type the way JSON does."""
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), "null")
