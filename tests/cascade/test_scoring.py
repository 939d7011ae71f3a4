"""Verdicts from the best brand's scores and the operating threshold."""


from matcher.cascade.scoring import VERDICT_COPY, VERDICT_NO_MATCH, VERDICT_SAME_PRODUCT, verdict


def test_verdict_thresholds():
    assert verdict(0.59, 0.99, threshold=0.6) == VERDICT_NO_MATCH
    assert verdict(0.0, 0.0, threshold=0.6) == VERDICT_NO_MATCH
    assert verdict(0.6, 0.5, threshold=0.6) == VERDICT_COPY  # both comparisons are inclusive
    assert verdict(0.6, 0.49, threshold=0.6) == VERDICT_SAME_PRODUCT
    assert verdict(0.95, 0.99, threshold=0.6) == VERDICT_COPY
    assert verdict(0.95, 0.1, threshold=0.6) == VERDICT_SAME_PRODUCT
    assert verdict(0.2, 0.9, threshold=0.1) == VERDICT_COPY
