"""A results file read for the report: rows normalised (``ReportRow``), and what a card on the page shows."""
from __future__ import annotations

import csv
from dataclasses import dataclass
import math
from pathlib import Path

from ..errors import MatcherError
from ..scan import read_results

SUSPECT_VERDICTS = ("copy", "same_product")


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
    seller: str = ""  # the manifest's seller column, when it had one
    cluster_id: str = ""  # the near-duplicate cluster of the scan (``scan.clusters``), '' when none

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


def load_rows(results_path: Path) -> list[ReportRow]:
    """Read and normalise a results file; sorted by suspicion (descending), then position."""
    try:
        raw = read_results(results_path)
    except (OSError, ValueError, csv.Error) as exc:  # e.g. bad JSON in a CSV 'matches' cell
        raise MatcherError(f"{results_path}: cannot read results file ({one_line(exc)})") from None
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
        score=as_number(item.get("score")), suspicion=as_number(item.get("suspicion")),
        explanation=_text(item.get("explanation")), path=_text(item.get("path")),
        title=_text(item.get("title")), price=_text(item.get("price")),
        position=position if isinstance(position, int) and not isinstance(position, bool) else None,
        matches=matches, keypoints=_keypoints(matches[0].get("keypoints") if matches else None),
        seller=_text(item.get("seller")), cluster_id=_text(item.get("cluster_id")),
    )


def _text(value: object) -> str:
    """str of a cell; None -> ''; whole floats such as a price 3.0 keep their decimals."""
    return "" if value is None else str(value)


def as_number(value: object) -> float | None:
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
            numbers = [as_number(v) for v in entry]
            if all(n is not None for n in numbers):
                points.append(tuple(min(1.0, max(0.0, n)) for n in numbers))
    return tuple(points)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__
