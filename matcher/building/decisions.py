"""An analyst's decisions file, read strictly and resolved to image files through a scan's results.

``DECISIONS.csv`` has a header with the columns ``listing``, ``brand``, ``label`` and optionally ``note`` (others
are ignored), one decision per line:

- ``listing``: how the results file names the listing: its ``listing`` (path as scanned), its ``listing_id``, or
  the image file's path (``path``, absolute or relative to the working folder);
- ``brand``: a brand of the index;
- ``label``: ``false_positive`` (the listing is not this brand's product) or ``counterfeit`` (a confirmed fake
  photo of this brand).

Everything is checked before any image is embedded and before anything is published; the first problem is a
one-line ``FeedbackError`` at ``file:line``: a bad CSV line, a missing column, an unknown label, brand or
listing, a listing whose row is not ``ok`` or whose image file is gone, two lines giving the same image opposite
labels for a brand, and a results file of another index. The last is told by the references the decided rows
name: every ``reference`` of such a row (and of its ``matches``) must be a reference of this index, as a results
file of this index's scans names them; a results file of another catalog names others.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterable, Sequence

from ..errors import FeedbackError, ListingsError
from ..inputs import file_sha256
from ..inputs.strictcsv import csv_rows, strict_reader

LABELS = ("false_positive", "counterfeit")
REQUIRED_COLUMNS = ("listing", "brand", "label")


@dataclass(frozen=True)
class Decision:
    """One line of a decisions file, resolved.

    source : ``file:line`` of the line (what errors and the decision log quote)
    listing, brand, label, note : as written
    path : the listing's image file, from its results row
    sha256 : of that file
    """

    source: str
    listing: str
    brand: str
    label: str
    note: str
    path: Path
    sha256: str


def read_decisions(decisions_path: str | Path, results: Sequence[dict], results_path: str | Path,
                   brands: Collection[str], references: Collection[str]) -> list[Decision]:
    """The decisions of ``decisions_path``, each resolved through ``results`` (the rows of ``results_path``,
    ``matcher.scan.read_results``) and checked against the index's ``brands`` and ``references`` (their paths,
    known fakes included), read from its manifest: no CNN is loaded to refuse a bad file.

    Raises FeedbackError (``file:line: what``) at the first problem (module docstring).
    """
    decisions_path, results_path = Path(decisions_path), Path(results_path)
    lookup = _results_lookup(results)
    known_refs, brands = set(references), sorted(brands)
    out: list[Decision] = []
    labels_given: dict[tuple[str, str], Decision] = {}
    for line, row in _lines(decisions_path):
        where = f"{decisions_path}:{line}"
        listing, brand, label = row["listing"].strip(), row["brand"].strip(), row["label"].strip()
        if label not in LABELS:
            raise FeedbackError(f"{where}: label {label!r} is not one of {', '.join(LABELS)}")
        if brand not in brands:
            raise FeedbackError(f"{where}: brand {brand!r} is not in the index (its brands: "
                                f"{_some(brands)})")
        found = lookup.get(listing) or lookup.get(_resolved(listing))
        if not found:
            raise FeedbackError(f"{where}: listing {listing!r} is not in {results_path} (give its listing, "
                                "listing_id or image path as the results file has them)")
        images = {_resolved(results[i].get("path", "")) for i in found}
        if len(images) > 1:
            raise FeedbackError(f"{where}: listing {listing!r} names {len(images)} different images in "
                                f"{results_path}; give its listing path instead")
        number = found[0]
        result = results[number]
        place = f"{results_path}:{_line_of(results_path, number)}"
        _check_row(place, result, known_refs)
        path = Path(str(result.get("path", "")))
        try:
            sha256 = file_sha256(path)
        except OSError as exc:
            raise FeedbackError(f"{place}: the image of listing {listing!r} cannot be read ({path}: "
                                f"{exc.strerror or exc})") from None
        decision = Decision(where, listing, brand, label, row.get("note", "").strip(), path, sha256)
        earlier = labels_given.get((sha256, brand))
        if earlier is not None and earlier.label != label:
            raise FeedbackError(f"{where}: the same image is marked {earlier.label} for {brand} at "
                                f"{earlier.source}; give one label")
        labels_given[(sha256, brand)] = decision
        out.append(decision)
    if not out:
        raise FeedbackError(f"{decisions_path}: no decisions (header {', '.join(REQUIRED_COLUMNS)}, note; "
                            "one line per decision)")
    return out


def _lines(path: Path) -> Iterable[tuple[int, dict]]:
    """(line number, {column: value}) of each non-empty record of a strict CSV file with REQUIRED_COLUMNS."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FeedbackError(f"{path}: no such decisions file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedbackError(f"{path}: unreadable ({exc})") from None
    feed, reader = strict_reader(iter(text.splitlines(keepends=True)))
    header = None
    try:
        for cells in csv_rows(path, feed, reader):
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                missing = [c for c in REQUIRED_COLUMNS if c not in header]
                if missing:
                    raise FeedbackError(f"{path}:{feed.first}: no column {', '.join(missing)} in the header "
                                        f"(needs {', '.join(REQUIRED_COLUMNS)}; note is optional)")
                continue
            if len(cells) > len(header) or len(cells) < len(REQUIRED_COLUMNS):
                raise FeedbackError(f"{path}:{feed.first}: {len(cells)} fields, the header has {len(header)}")
            yield feed.first, dict(zip(header, cells + [""] * (len(header) - len(cells))))
    except ListingsError as exc:  # a bad CSV line, placed by strictcsv
        raise FeedbackError(str(exc)) from None


def _results_lookup(results: Sequence[dict]) -> dict[str, list[int]]:
    """Every name a results row answers to (listing, listing_id, resolved image path) -> row numbers."""
    lookup: dict[str, list[int]] = {}
    for i, row in enumerate(results):
        names = {str(row.get("listing") or ""), str(row.get("listing_id") or ""),
                 _resolved(str(row.get("path") or ""))}
        for name in names - {""}:
            lookup.setdefault(name, []).append(i)
    return lookup


def _check_row(place: str, row: dict, known_refs: set[str]) -> None:
    """A decided results row is usable: read fine, and judged against this index (its references are ours)."""
    if row.get("status") != "ok":
        raise FeedbackError(f"{place}: listing {row.get('listing')!r} has status {row.get('status')!r}: its "
                            "image was not read, so it cannot be marked")
    named = [row.get("reference")] + [m.get("reference") for m in row.get("matches") or [] if isinstance(m, dict)]
    foreign = [r for r in named if r and r not in known_refs]
    if foreign:
        raise FeedbackError(f"{place}: reference {foreign[0]!r} is not in this index: the results file comes "
                            "from another index (or one since changed by index remove/add); re-scan with this index")


def _line_of(results_path: Path, number: int) -> int:
    """The line of results row ``number`` (0-based): JSONL has one row per line, CSV a header line first."""
    return number + (2 if results_path.suffix.lower() == ".csv" else 1)


def _resolved(path: str) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError, ValueError):
        return path


def _some(names: Iterable[str], shown: int = 8) -> str:
    names = list(names)
    return ", ".join(names[:shown]) + (f", ... ({len(names)} in all)" if len(names) > shown else "")
