"""Suspicion: one number in [0, 1] that ranks listings for review, with the reasons in plain words.

A thin, fixed formula on top of the calibrated image evidence, no learned model::

    suspicion = p * (IMAGE_SHARE + TITLE_SHARE * title_strength + PRICE_SHARE * price_strength)

``p`` is the listing's calibrated brand score (P(it shows the brand's product)); the shares add up to 1.

- title_strength: 0, or 0.7 for one counterfeit term in the title ("replica", "1:1", "AAA", "inspired by", ...),
  1.0 for two or more;
- price_strength: 0 at 25% or less below the brand's typical price (``brands.csv``), rising linearly to 1 at 75%
  or more below.

Listing signals count only when the image matched a brand (verdict ``copy`` or ``same_product``): a listing whose
image matches nothing is never made suspicious by its title or price. Because they scale with ``p``, a strong
title cannot outrank much stronger image evidence, while of two listings with the same image the one titled as
a replica at a fraction of the price ranks first. Without titles or prices the ranking is the image score's.
"""
from __future__ import annotations

from dataclasses import dataclass
import re

from ..cascade.scoring import VERDICT_COPY, VERDICT_NO_MATCH

COUNTERFEIT_TERMS = (
    "replica", "1:1", "aaa", "inspired by", "dupe", "knockoff", "knock-off", "knock off", "fake", "copy",
    "imitation", "clone", "mirror quality", "high copy", "unbranded", "not original", "same as original",
    "look-alike", "lookalike", "counterfeit", "unofficial",
)


@dataclass(frozen=True)
class SuspicionWeights:
    """The formula's constants (see the module docstring). Shares add up to 1."""

    image_share: float = 0.70
    title_share: float = 0.15
    price_share: float = 0.15
    one_term_strength: float = 0.7
    discount_start: float = 0.25  # fraction below the typical price where the price signal starts
    discount_full: float = 0.75  # ... and where it is at full strength


@dataclass(frozen=True)
class Suspicion:
    """value in [0, 1]; reasons: plain-word sentences, the image evidence first."""

    value: float
    reasons: tuple[str, ...]

    @property
    def explanation(self) -> str:
        return "; ".join(self.reasons)


def counterfeit_terms(title: str) -> list[str]:
    """The counterfeit terms a title uses, in COUNTERFEIT_TERMS order (case-insensitive, whole words)."""
    text = title.lower()
    return [t for t in COUNTERFEIT_TERMS if re.search(r"(?<!\w)" + re.escape(t) + r"(?!\w)", text)]


def price_discount(price: float | None, typical: float | None) -> float | None:
    """How far below the typical price a price is: 1 - price / typical (negative when above); None if unknown."""
    if price is None or not typical:
        return None
    return 1.0 - price / typical


def assess(verdict: str, brand: str | None, reference: str | None, score: float, *, title: str = "",
           price: float | None = None, typical_price: float | None = None,
           weights: SuspicionWeights = SuspicionWeights()) -> Suspicion:
    """Suspicion of one matched listing.

    verdict, brand, reference, score : the engine's result (score = calibrated brand score in [0, 1])
    title, price : from the listings manifest ('' / None when unknown)
    typical_price : the brand's typical price from the index (None when brands.csv gave none)
    """
    p = min(max(float(score), 0.0), 1.0)
    matched = verdict != VERDICT_NO_MATCH and brand
    if not brand:
        reasons = ["image: matches no protected brand"]
    elif verdict == VERDICT_COPY:
        reasons = [f"image: edited copy of {brand}'s photo {reference} (match score {p:.2f}) "
                   f"+{weights.image_share * p:.2f}"]
    elif matched:
        reasons = [f"image: shows {brand}'s product, not a copy of one of its photos (match score {p:.2f}) "
                   f"+{weights.image_share * p:.2f}"]
    else:
        reasons = [f"image: no match (closest brand {brand}, match score {p:.2f}) +{weights.image_share * p:.2f}"]
    value = weights.image_share * p

    terms = counterfeit_terms(title or "")
    if terms:
        quoted = ", ".join(f"'{t}'" for t in terms)
        if matched:
            strength = 1.0 if len(terms) > 1 else weights.one_term_strength
            lift = weights.title_share * strength * p
            value += lift
            reasons.append(f"title says {quoted} +{lift:.2f}")
        else:
            reasons.append(f"title says {quoted}, not counted: the image matches no brand")

    discount = price_discount(price, typical_price)
    if discount is not None and discount > weights.discount_start:
        span = weights.discount_full - weights.discount_start
        strength = min(1.0, (discount - weights.discount_start) / span)
        where = f"price {price:.2f} is {discount:.0%} below {brand}'s typical {typical_price:.2f}"
        if matched:
            lift = weights.price_share * strength * p
            value += lift
            reasons.append(f"{where} +{lift:.2f}")
        else:
            reasons.append(f"{where}, not counted: the image matches no brand")
    return Suspicion(round(min(value, 1.0), 6), tuple(reasons))
