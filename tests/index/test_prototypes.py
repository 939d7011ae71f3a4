"""Brand prototypes: a new photo of a product is judged against the brand's references as a whole."""
import numpy as np
import pytest

from matcher.cascade.evidence import BRAND_FEATURES, Candidate, ListingEvidence, brand_feature_rows
from matcher.index.prototypes import BrandPrototypes


def unit(*rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# Acme's three photos surround the query; Beta has one photo nearer to the query than any of Acme's
# and one far away: the nearest reference is Beta's, the nearest brand as a whole is Acme.
REFERENCES = unit([1, 0.35, 0], [1, -0.35, 0], [1, 0, 0.4], [1, 0.1, -0.25], [0, 0, 1])
BRANDS = ["Acme", "Acme", "Acme", "Beta", "Beta"]
QUERY = unit([1, 0, 0])


def test_a_brand_near_on_average_beats_a_brand_with_one_close_photo():
    prototypes = BrandPrototypes.of(REFERENCES, BRANDS)
    nearest_reference = int(np.argmax(REFERENCES @ QUERY[0]))
    assert BRANDS[nearest_reference] == "Beta"
    cosines = prototypes.similarities(QUERY)[0]
    assert prototypes.names == ["Acme", "Beta"]
    assert cosines[0] > cosines[1]
    expected = REFERENCES[:3].sum(axis=0) / np.linalg.norm(REFERENCES[:3].sum(axis=0)) @ QUERY[0]
    assert cosines[0] == pytest.approx(expected, abs=1e-6)


def test_hidden_references_leave_the_prototype_and_a_fully_hidden_brand_is_absent():
    prototypes = BrandPrototypes.of(REFERENCES, BRANDS)
    cosines = prototypes.similarities(np.vstack([QUERY, QUERY]), hidden_rows=[[0], [3, 4]])
    rest = REFERENCES[1:3].sum(axis=0)
    assert cosines[0, 0] == pytest.approx(rest / np.linalg.norm(rest) @ QUERY[0], abs=1e-6)
    assert cosines[1, 1] == -np.inf
    assert "Beta" not in prototypes.nearest(cosines[1], {"Acme", "Beta"})
    # nothing hidden from the first query's Beta: the same value as without hiding
    assert cosines[0, 1] == pytest.approx(prototypes.similarities(QUERY)[0, 1], abs=1e-9)


def test_nearest_keeps_the_candidates_and_the_best_brands_overall():
    vectors = unit(*np.eye(6)[:, :4] + 0.01)  # 6 references of 6 brands, 4 dimensions
    prototypes = BrandPrototypes.of(vectors, list("ABCDEF"))
    row = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.05])
    assert set(prototypes.nearest(row, {"F"})) == {"A", "C", "F"}


def test_the_prototype_margin_reaches_the_brand_features():
    candidates = [Candidate(4, "Beta", 0.95, 0.95), Candidate(1, "Acme", 0.9, 0.9)]
    ev = ListingEvidence(candidates=candidates, background_similarity=0.1,
                         prototype_similarity={"Acme": 0.93, "Beta": 0.7, "Corp": 0.8})
    brands, _, rows = brand_feature_rows(ev)
    column = {name: i for i, name in enumerate(BRAND_FEATURES)}
    by_brand = dict(zip(brands, rows))
    assert by_brand["Acme"][column["prototype_sim"]] == pytest.approx(0.93)
    assert by_brand["Acme"][column["prototype_margin"]] == pytest.approx(0.13)  # over Corp, not a candidate
    assert by_brand["Beta"][column["prototype_margin"]] == pytest.approx(-0.23)


def test_prototypes_of_a_catalog_larger_than_one_block_sum_every_reference(monkeypatch):
    import matcher.index.prototypes as prototypes_module

    monkeypatch.setattr(prototypes_module, "_BLOCK_ROWS", 3)  # brands straddle the blocks
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(11, 4)).astype(np.float32)
    brands = list("ABCABBACCAB")
    prototypes = BrandPrototypes.of(vectors, brands)
    for i, name in enumerate(prototypes.names):
        expected = vectors[[b == name for b in brands]].astype(np.float64).sum(axis=0)
        np.testing.assert_allclose(prototypes.sums[i], expected, rtol=1e-12)
    assert prototypes.counts.tolist() == [4, 4, 3]
