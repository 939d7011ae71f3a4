"""The results-file row of one listing: its manifest fields, the engine's result and the suspicion."""
from __future__ import annotations

from typing import Mapping

from ..cascade import MatchResult
from ..index import IndexVersion, model_name
from ..inputs import Listing, parse_price
from .suspicion import assess


def audit_fields(version: IndexVersion) -> dict:
    """What a row was judged with, so a results file says it months later: ``index_version`` (the published
    version folder's name), ``model`` (``index.model_name``: backbone@weights/runtime family) and the operating
    ``threshold`` (the brand score a copy / same_product verdict needs)."""
    return {"index_version": version.folder.name, "model": model_name(version.manifest.get("fingerprint", {})),
            "threshold": round(float(version.scorer.threshold), 6)}


def result_row(listing: Listing, result: MatchResult, top_k: int, typical_prices: dict[str, float],
               audit: Mapping[str, object] | None = None) -> dict:
    """The results-file row of one listing (RESULT_FIELDS, manifest extras, position, matches).

    The best match also carries its verified ``keypoints`` (see ``cascade.Match``) when it has any.
    typical_prices : brand -> typical price (the index's brands.csv), for the suspicion's price signal
    audit : ``audit_fields`` of the index version that judged it (left empty when None); ``cluster_id`` is left
        empty: a scan fills it in its final pass (``clusters.py``)
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
        "position": listing.position, "matches": matches, "cluster_id": "",
        "index_version": "", "model": "", "threshold": None, **(audit or {}),
    })
    if result.ok:
        found = assess(result.verdict, result.brand, result.reference, result.score,
                       title=listing.fields.get("title", ""), price=_price_or_none(listing.fields.get("price", "")),
                       typical_price=typical_prices.get(result.brand or ""))
        row.update(suspicion=found.value, explanation="; ".join(filter(None, (found.explanation, result.note))))
    return row


def _price_or_none(text: str) -> float | None:
    try:
        return parse_price(text)
    except ValueError:  # check_listing_prices refused these before the scan; be safe for API callers
        return None
