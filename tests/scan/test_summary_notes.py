"""The scan summary's notes: sellers with the most suspects, and the warning about a reference flooding matches."""
from __future__ import annotations

from pathlib import Path

from matcher.scan import ScanSummary


def _summary(total: int, flagged: list[tuple[str, str]]) -> ScanSummary:
    summary = ScanSummary(results=Path("r.jsonl"), total=total)
    for reference, seller in flagged:
        summary.count({"status": "ok", "verdict": "copy", "reference": reference, "seller": seller})
    summary.count({"status": "ok", "verdict": "no_match", "reference": "x/1.jpg", "seller": "s9"})
    return summary


def test_flood_warning_names_the_reference_and_the_command():
    flagged = [("Brand/box.jpg", "s1")] * 6 + [(f"Brand/{k}.jpg", "s2") for k in range(14)]
    notes = _summary(100, flagged).notes()
    warning = [n for n in notes if n.startswith("warning")]
    assert len(warning) == 1
    assert "Brand/box.jpg accounts for 6 of the 20 flagged listings (30%)" in warning[0]
    assert "matcher index disable" in warning[0]


def test_no_flood_warning_at_20_percent_or_below_or_in_small_scans():
    even = [("Brand/box.jpg", "s1")] * 4 + [(f"Brand/{k}.jpg", "s1") for k in range(16)]
    assert not any(n.startswith("warning") for n in _summary(500, even).notes())
    flood = [("Brand/box.jpg", "s1")] * 10
    assert not any(n.startswith("warning") for n in _summary(99, flood).notes())


def test_sellers_with_most_suspects_first():
    flagged = [("a.jpg", "s2")] * 3 + [("b.jpg", "s1")] * 5 + [("c.jpg", "s3")]
    notes = _summary(10, flagged).notes(sellers=2)
    assert "sellers with the most suspects: s1 5, s2 3" in notes
