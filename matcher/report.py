"""HTML report stage: a results file (+ its index) -> one self-contained HTML page for a human reviewer.

``write_report`` reads the rows (``writers.read_results``), keeps the suspects (ok rows whose verdict is
``copy`` or ``same_product``) in suspicion order, writes JPEG thumbnails of their listing and reference photos
into ``<report stem>_files/`` beside the page, and renders the page (``report_page.render_page``). The page
needs no server and no network: CSS and JS are inlined from ``matcher/report_assets``.

A listing or reference photo that cannot be read becomes a placeholder box on the page, never an error.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from . import version as index_version
from .errors import ImageError, MatcherError
from .images import load_image, thumbnail_jpeg
from .report_page import render_page
from .writers import read_results

SUSPECT_VERDICTS = ("copy", "same_product")
THUMB_SIDE = 240  # long side of listing thumbnails, pixels
_THUMB_NAME = re.compile(r"^(listing|reference)-\d+\.jpg$")


@dataclass(frozen=True)
class ReportRow:
    """One results row, normalised: text fields are str ('' when missing), numbers float or None.

    ``keypoints`` are ``(qx, qy, rx, ry)`` in [0, 1]: an inlier in the listing (fraction of its width/height)
    and the matching point in the reference.
    """

    listing: str
    listing_id: str
    status: str
    error: str
    verdict: str
    brand: str
    reference: str
    score: float | None
    suspicion: float | None
    explanation: str
    path: str
    title: str
    price: str
    position: int | None
    matches: tuple[dict, ...]
    keypoints: tuple[tuple[float, float, float, float], ...]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def suspect(self) -> bool:
        return self.ok and self.verdict in SUSPECT_VERDICTS


@dataclass(frozen=True)
class Thumb:
    """A thumbnail on the page: ``src`` is a URL relative to the page, or None for a placeholder saying ``note``."""

    src: str | None
    width: int = 0
    height: int = 0
    note: str = ""


@dataclass(frozen=True)
class Card:
    """One suspect listing as shown: its row and its two thumbnails."""

    row: ReportRow
    listing_thumb: Thumb
    reference_thumb: Thumb


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
        Missing or malformed results file, unwritable output, or an unusable index (one line, naming the file).
    """
    results_path, out_path = Path(results_path), Path(out_path)
    rows = load_rows(results_path)
    suspects = [r for r in rows if r.suspect]
    shown = [r for r in suspects if (r.suspicion or 0.0) >= min_suspicion]
    failed = [r for r in rows if not r.ok]
    files_dir = out_path.with_name(out_path.stem + "_files")
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


def load_rows(results_path: Path) -> list[ReportRow]:
    """Read and normalise a results file; sorted by suspicion (descending), then position."""
    try:
        raw = read_results(results_path)
    except (OSError, ValueError, csv.Error) as exc:  # e.g. bad JSON in a CSV 'matches' cell
        raise MatcherError(f"{results_path}: cannot read results file ({_one_line(exc)})") from None
    rows = []
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise MatcherError(f"{results_path}: result {number} is not an object")
        rows.append(_normalise(item))
    big = float("inf")
    return sorted(rows, key=lambda r: (-(r.suspicion if r.suspicion is not None else -1.0),
                                       r.position if r.position is not None else big))


# --- rows ------------------------------------------------------------------


def _normalise(item: dict) -> ReportRow:
    matches = tuple(m for m in (item.get("matches") or []) if isinstance(m, dict)) \
        if isinstance(item.get("matches"), list) else ()
    position = item.get("position")
    return ReportRow(
        listing=_text(item.get("listing")), listing_id=_text(item.get("listing_id")),
        status=_text(item.get("status")) or "unknown", error=_text(item.get("error")),
        verdict=_text(item.get("verdict")), brand=_text(item.get("brand")), reference=_text(item.get("reference")),
        score=_number(item.get("score")), suspicion=_number(item.get("suspicion")),
        explanation=_text(item.get("explanation")), path=_text(item.get("path")),
        title=_text(item.get("title")), price=_text(item.get("price")),
        position=position if isinstance(position, int) and not isinstance(position, bool) else None,
        matches=matches, keypoints=_keypoints(matches[0].get("keypoints") if matches else None),
    )


def _text(value: object) -> str:
    """str of a cell; None -> ''; whole floats such as a price 3.0 keep their decimals."""
    return "" if value is None else str(value)


def _number(value: object) -> float | None:
    """float of a cell ('' / None / not a number / not finite -> None)."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _keypoints(value: object) -> tuple[tuple[float, float, float, float], ...]:
    """Valid ``[qx, qy, rx, ry]`` entries, clipped to [0, 1]; anything malformed is skipped."""
    if not isinstance(value, list):
        return ()
    points = []
    for entry in value:
        if isinstance(entry, (list, tuple)) and len(entry) == 4:
            numbers = [_number(v) for v in entry]
            if all(n is not None for n in numbers):
                points.append(tuple(min(1.0, max(0.0, n)) for n in numbers))
    return tuple(points)


# --- thumbnails ------------------------------------------------------------


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
    if not path:
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
    available = index_version.reference_thumbnails(index_dir)
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
    _, manifest = index_version.published_manifest(index_dir)
    return _number(manifest.get("operating_threshold"))


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
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise MatcherError(f"{path}: cannot write report ({_os_reason(exc)})") from None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or _one_line(exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
