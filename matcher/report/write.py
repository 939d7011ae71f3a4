"""HTML report stage: a results file (+ its index) -> one self-contained HTML page for a human reviewer.

``write_report`` reads the rows (``scan.writers.read_results``), keeps the suspects (ok rows whose verdict is
``copy`` or ``same_product``) in suspicion order, writes JPEG thumbnails of their listing and reference photos
into ``<report stem>_files/`` beside the page, and renders the page (``render_page`` of ``page.py``). The page
needs no server and no network: CSS and JS are inlined from ``matcher/report/assets``.

A listing or reference photo that cannot be read becomes a placeholder box on the page, never an error.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import contextlib
from dataclasses import dataclass
import io
import os
from pathlib import Path
import re
from urllib.parse import quote

from PIL import Image

from ..errors import ImageError, MatcherError
from ..index import published_manifest, reference_thumbnails
from ..inputs.images import load_image, thumbnail_jpeg
from ..scan import check_output
from .page import render_page
from .rows import Card, Thumb, as_number, load_rows, one_line

THUMB_SIDE = 240  # long side of listing thumbnails, pixels
_THUMB_NAME = re.compile(r"^(listing|reference)-\d+\.jpg$")


@dataclass(frozen=True)
class ReportSummary:
    """Counts of one report. ``cards``: suspects shown; ``failed``: rows whose status is not ok."""

    path: Path
    total: int
    suspects: int
    cards: int
    failed: int

    def line(self) -> str:
        shown = "" if self.cards == self.suspects else f" (of {self.suspects} suspects)"
        return (f"report {self.path}: {self.cards} suspect listings{shown} of {self.total}, "
                f"{self.failed} could not be read")


def write_report(results_path: str | os.PathLike, index_dir: str | os.PathLike | None,
                 out_path: str | os.PathLike, *, min_suspicion: float = 0.0) -> ReportSummary:
    """Write the HTML report of a results file (.jsonl or .csv) made with the index ``index_dir``.

    Parameters
    ----------
    results_path : results file of ``matcher scan``
    index_dir : the index the scan used (for reference thumbnails); None shows reference placeholders
    out_path : the HTML file to write; thumbnails go to ``<stem>_files/`` beside it
    min_suspicion : suspects with a lower suspicion (in [0, 1]) get no card; the summary still counts them

    Raises
    ------
    MatcherError
        Missing or malformed results file, unwritable output, or an unusable index (one line, naming the file);
        ``OutputPathError`` when ``out_path`` (or its thumbnails folder) is the results file or lies in the index.
    """
    results_path, out_path = Path(results_path), Path(out_path)
    files_dir = out_path.with_name(out_path.stem + "_files")
    for path in (out_path, files_dir):  # before reading anything: a refusal costs nothing
        check_output(path, "report", inputs=[("results file", results_path)], folders=[("index folder", index_dir)])
    rows = load_rows(results_path)
    suspects = [r for r in rows if r.suspect]
    shown = [r for r in suspects if (r.suspicion or 0.0) >= min_suspicion]
    failed = [r for r in rows if not r.ok]
    _prepare_files_dir(files_dir, out_path)
    listing_thumbs = _write_listing_thumbs([r.path for r in shown], files_dir)
    reference_thumbs = _write_reference_thumbs([r.reference for r in shown if r.reference], index_dir, files_dir)
    missing_reference = Thumb(None, note="no reference photo")
    cards = [Card(r, listing_thumbs[r.path], reference_thumbs.get(r.reference, missing_reference)) for r in shown]
    page = render_page(rows, cards, failed, results_name=str(results_path),
                       index_name="" if index_dir is None else str(index_dir),
                       min_suspicion=min_suspicion, threshold=_operating_threshold(index_dir))
    _write_text(out_path, page)
    return ReportSummary(out_path, total=len(rows), suspects=len(suspects), cards=len(cards), failed=len(failed))


def _prepare_files_dir(files_dir: Path, out_path: Path) -> None:
    """Create the thumbnails folder; drop thumbnails of an earlier report (only files named like ours)."""
    try:
        files_dir.mkdir(parents=True, exist_ok=True)
        for old in files_dir.iterdir():
            if _THUMB_NAME.match(old.name) and old.is_file():
                old.unlink()
    except OSError as exc:
        raise MatcherError(f"{out_path}: cannot write report: cannot create {files_dir} ({_os_reason(exc)})") from None


def _write_listing_thumbs(paths: list[str], files_dir: Path) -> dict[str, Thumb]:
    """Thumbnail each distinct listing path once (in threads); path -> Thumb."""
    distinct = list(dict.fromkeys(paths))
    names = [f"listing-{i:05d}.jpg" for i in range(1, len(distinct) + 1)]
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        thumbs = list(pool.map(lambda pair: _listing_thumb(pair[0], files_dir, pair[1]), zip(distinct, names)))
    return dict(zip(distinct, thumbs))


def _listing_thumb(path: str, files_dir: Path, name: str) -> Thumb:
    if not path or "\x00" in path:  # no file name holds a NUL: a results file edited by hand
        return Thumb(None, note="no image path in the results")
    try:
        image = load_image(path, draft_side=2 * THUMB_SIDE)
    except ImageError as exc:
        return Thumb(None, note=f"listing image not available ({exc.kind.replace('_', ' ')})")
    data = thumbnail_jpeg(image, long_side=THUMB_SIDE)
    _write_bytes(files_dir / name, data)
    return Thumb(_url(files_dir, name), *(_jpeg_size(data) or (0, 0)))


def _write_reference_thumbs(references: list[str], index_dir, files_dir: Path) -> dict[str, Thumb]:
    """Write each distinct reference's thumbnail once; reference path -> Thumb (placeholder when unavailable)."""
    distinct = list(dict.fromkeys(references))
    if not distinct:
        return {}
    if index_dir is None:
        return {ref: Thumb(None, note="reference photo not available (no index given)") for ref in distinct}
    available = reference_thumbnails(index_dir)
    thumbs = {}
    for number, ref in enumerate(distinct, start=1):
        data = available.get(ref)
        size = _jpeg_size(data) if data else None
        if size is None:
            thumbs[ref] = Thumb(None, note="reference photo not available")
            continue
        name = f"reference-{number:05d}.jpg"
        _write_bytes(files_dir / name, data)
        thumbs[ref] = Thumb(_url(files_dir, name), *size)
    return thumbs


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of encoded image bytes, or None when they are not a readable image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # PIL raises many kinds on bad bytes; a bad thumbnail is only a placeholder
        return None


def _operating_threshold(index_dir) -> float | None:
    """The index's operating score threshold (drawn on the score histogram), None when unknown."""
    if index_dir is None:
        return None
    _, manifest = published_manifest(index_dir)
    return as_number(manifest.get("operating_threshold"))


# --- files -----------------------------------------------------------------


def _url(files_dir: Path, name: str) -> str:
    """URL of a thumbnail relative to the page (the folder name may hold spaces, '#', ...)."""
    return f"{quote(files_dir.name)}/{quote(name)}"


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise MatcherError(f"{path}: cannot write thumbnail ({_os_reason(exc)})") from None


def _write_text(path: Path, text: str) -> None:
    """Write the page atomically (temp file + rename), so a reader never sees half a report."""
    temp = path.with_name(path.name + ".tmp")
    try:
        temp.write_bytes(text.encode("utf-8", "backslashreplace"))  # an undecodable file name shows as \udcXX
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise MatcherError(f"{path}: cannot write report ({_os_reason(exc)})") from None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or one_line(exc)
