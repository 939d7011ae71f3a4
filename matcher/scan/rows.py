"""The results-file row of one listing: its manifest fields, the engine's result and the suspicion."""
from __future__ import annotations

from ..cascade import MatchResult
from ..inputs import Listing, parse_price
from .suspicion import assess


def result_row(listing: Listing, result: MatchResult, top_k: int, typical_prices: dict[str, float]) -> dict:
    """The results-file row of one listing (RESULT_FIELDS, manifest extras, position, matches).

    The best match also carries its verified ``keypoints`` (see ``cascade.Match``) when it has any.
    typical_prices : brand -> typical price (the index's brands.csv), for the suspicion's price signal
    """
    row = dict(listing.fields)
    matches = [{"brand": m.brand, "reference": m.reference, "score": m.score, "copy_score": m.copy_score,
                "inliers": m.inliers} for m in result.matches[:top_k]]
    if matches and result.matches[0].keypoints:
        matches[0]["keypoints"] = [list(pair) for pair in result.matches[0].keypoints]
    row.update({
        "listing": listing.listing, "listing_id": listing.fields.get("listing_id", ""),
        "status": result.status, "error": result.error,
        "verdict": result.verdict if result.ok else "",
        "brand": result.brand or "", "reference": result.reference or "",
        "score": round(result.score, 6) if result.ok else None,
        "suspicion": None, "explanation": "", "path": str(listing.path),
        "position": listing.position, "matches": matches,
    })
    if result.ok:
        found = assess(result.verdict, result.brand, result.reference, result.score,
                       title=listing.fields.get("title", ""), price=_price_or_none(listing.fields.get("price", "")),
                       typical_price=typical_prices.get(result.brand or ""))
        row.update(suspicion=found.value, explanation=found.explanation)
    return row


def _price_or_none(text: str) -> float | None:
    try:
        return parse_price(text)
    except ValueError:  # check_listing_prices refused these before the scan; be safe for API callers
        return None
