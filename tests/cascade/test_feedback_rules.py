"""The feedback stage's rules in isolation (``cascade.feedback``): disabled references hidden from every listing,
a negative example ruling a brand out only for a near-duplicate that no reference of the brand matches better,
and a known fake counted for its brand only where the listing is a verified copy of it."""
from __future__ import annotations

from types import SimpleNamespace

from matcher.cascade import Candidate, ListingEvidence, MatchResult
from matcher.cascade.feedback import NEAR_INLIERS, NegativeHit, _merge_fakes, _ruled_out, hidden_references
from matcher.cascade.scoring import Match


def _refs(disabled=(), negatives=(), known_fakes=None) -> SimpleNamespace:
    return SimpleNamespace(feedback=SimpleNamespace(disabled=list(disabled), negatives=list(negatives),
                                                    known_fakes=known_fakes or {}))


def _marked(brand: str) -> SimpleNamespace:
    return SimpleNamespace(brand=brand, date="2026-12-07", listing="listing_07.jpg")


def _evidence(candidates: list[Candidate], negatives: list[NegativeHit]) -> ListingEvidence:
    ev = ListingEvidence(candidates, 0.1)
    ev.negatives = negatives
    return ev


def _match(brand: str, ref_id: int, copy_score: float, inliers: int, score: float = 0.9) -> Match:
    return Match(brand, f"{brand}/{ref_id}.jpg", ref_id, score, copy_score, 0.8, inliers)


def test_disabled_references_are_hidden_from_every_listing_on_top_of_their_own():
    assert hidden_references(_refs(disabled=[3]), None, 2) == [{3}, {3}]
    assert hidden_references(_refs(disabled=[3]), [{1}, {2}], 2) == [{1, 3}, {2, 3}]
    assert hidden_references(_refs(), [{1}], 1) == [{1}]


def test_a_near_duplicate_of_a_negative_loses_the_brand():
    refs = _refs(negatives=[_marked("Oatly")])
    weak = Candidate(1, "Oatly", 0.5, 0.5, inliers=8)
    ev = _evidence([weak], [NegativeHit(0, similarity=0.9, inliers=NEAR_INLIERS + 10)])
    assert set(_ruled_out(refs, ev)) == {"Oatly"}


def test_a_negative_does_not_rule_out_a_brand_matched_better_or_a_listing_merely_alike():
    refs = _refs(negatives=[_marked("Oatly")])
    copy_of_a_reference = Candidate(1, "Oatly", 0.6, 0.6, inliers=200)  # more inliers than with the negative
    ev = _evidence([copy_of_a_reference], [NegativeHit(0, similarity=0.9, inliers=60)])
    assert _ruled_out(refs, ev) == {}
    closer = Candidate(1, "Oatly", 0.95, 0.95, inliers=5)  # a higher cosine to a reference than to the negative
    assert _ruled_out(refs, _evidence([closer], [NegativeHit(0, similarity=0.9, inliers=60)])) == {}
    alike = Candidate(1, "Oatly", 0.5, 0.5, inliers=5)  # not a near-duplicate: too few inliers with the negative
    assert _ruled_out(refs, _evidence([alike], [NegativeHit(0, similarity=0.9, inliers=NEAR_INLIERS - 1)])) == {}


def test_a_known_fake_counts_for_its_brand_only_as_a_verified_copy():
    own = {"Oatly#fake7": "Oatly"}
    copied = MatchResult(status="ok", verdict="copy", brand="Oatly#fake7", score=0.9,
                         matches=(_match("Oatly#fake7", 7, 0.9, 80), _match("Oatly", 1, 0.2, 3, 0.4),
                                  _match("Arla", 2, 0.1, 0, 0.1)))
    merged = _merge_fakes(copied, own)
    assert merged.brand == "Oatly" and [(m.brand, m.ref_id) for m in merged.matches] == [("Oatly", 7), ("Arla", 2)]
    alike = MatchResult(status="ok", verdict="same_product", brand="Oatly#fake7", score=0.9,
                        matches=(_match("Oatly#fake7", 7, 0.3, 80), _match("Arla", 2, 0.1, 0, 0.1)))
    assert [m.brand for m in _merge_fakes(alike, own).matches] == ["Arla"]  # not a copy of the fake: dropped
    few = MatchResult(status="ok", verdict="copy", brand="Oatly#fake7", score=0.9,
                      matches=(_match("Oatly#fake7", 7, 0.9, NEAR_INLIERS - 1),))
    assert _merge_fakes(few, own).verdict == "no_match"
