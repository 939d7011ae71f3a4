"""The cascade's gate: which listings deserve the expensive stages (region search, SIFT verification).

Marketplace traffic is mostly listings that match nothing; the gate lets them stop after the cheap global stage.
It reads only what that stage already has (no extra CNN pass):

- the global brand model's best score (as a logit), the best whole-image cosine and the similarity to the
  index's background photos;
- the best cosine between any reference and five *feature-map windows* of the listing
  (``features.pooling.WINDOWS``: parts of the CNN's last feature map, pooled), a coarse look at a product shown
  small inside a collage, a screenshot or a scene, which the whole-image descriptor misses.

A logistic model over these features is fitted at index build on the synthetic listings (``building.calibration``): its
positives are the synthetic copies and same-product listings that the *full* cascade detects (brand score of
their true brand >= the operating threshold); listings the expensive stages would not rescue anyway are not
worth protecting. The gate threshold keeps ``BuildSettings.gate_recall`` of those positives.

A listing that passes must also be *like* the catalog's listings (``index.likeness``: its best cosine to the
index's synthetic listings at least the index's likeness threshold, which keeps ``BuildSettings.likeness_recall``
of the positives). One that is not is *dismissed*: everyday photos that merely share a colour or layout with some
reference, whose global score can be high, skip the expensive stages too but are scored by the full models as if
those stages found nothing (no inliers, no closer region), which is what the stages find for such photos. A
multi-photo layout is never dismissed (``CascadeSettings.layouts_never_dismissed``).
"""
from __future__ import annotations

import numpy as np

from .evidence import ListingEvidence, brand_feature_rows
from ..index.scorer import LogisticModel, Scorer, fit_logistic

GATE_FEATURES = ["global_brand_logit", "max_sim", "background_sim", "window_sim", "window_minus_background"]


def global_brand_score(scorer: Scorer, ev: ListingEvidence) -> float:
    """The best brand score from global features alone (0 when there is no candidate)."""
    _, _, brand_x = brand_feature_rows(ev)
    return float(scorer.brand_global.predict(brand_x).max()) if len(brand_x) else 0.0


def gate_features(scorer: Scorer, evidence: list[ListingEvidence]) -> np.ndarray:
    """float64 (n, len(GATE_FEATURES)) for listings with global evidence (and window similarity)."""
    rows = []
    for ev in evidence:
        p = min(max(global_brand_score(scorer, ev), 1e-6), 1 - 1e-6)
        best = ev.candidates[0].similarity if ev.candidates else -1.0
        rows.append([np.log(p / (1 - p)), best, ev.background_similarity, ev.window_similarity,
                     ev.window_similarity - ev.background_similarity])
    return np.asarray(rows, np.float64).reshape(len(evidence), len(GATE_FEATURES))


def passes_gate(scorer: Scorer, evidence: list[ListingEvidence]) -> np.ndarray:
    """bool (n,): which listings go on to the expensive stages. Indexes without a gate model use the older
    rule (global brand score >= ``verify_gate``)."""
    return gate_margin(scorer, evidence) >= 0.0


def gate_margin(scorer: Scorer, evidence: list[ListingEvidence]) -> np.ndarray:
    """float64 (n,): each listing's gate score minus the gate threshold (probabilities; >= 0 passes). A re-scan
    reads how far from the threshold a listing is, to trust a decision made on stored float16 descriptors."""
    if scorer.gate is None:
        return np.asarray([global_brand_score(scorer, ev) - scorer.verify_gate for ev in evidence], np.float64)
    if not evidence:
        return np.zeros(0, np.float64)
    return scorer.gate.predict(gate_features(scorer, evidence)) - scorer.gate_threshold


def alike(scorer: Scorer, evidence: list[ListingEvidence]) -> np.ndarray:
    """bool (n,): which listings look like the catalog's listings (``index.likeness``); all of them when the index
    has no likeness threshold or a listing's likeness was not measured."""
    threshold = scorer.likeness_threshold
    return np.asarray([threshold is None or ev.likeness is None or ev.likeness >= threshold for ev in evidence],
                      bool)


def fit_gate(features: np.ndarray, worth_verifying: np.ndarray, *,
             recall: float) -> tuple[LogisticModel, float]:
    """Fit the gate model and the threshold that keeps ``recall`` of the positive rows.

    features : (m, len(GATE_FEATURES)); worth_verifying : bool (m,)
    """
    model = fit_logistic(features, worth_verifying)
    positives = model.predict(features[worth_verifying])
    threshold = float(np.quantile(positives, 1.0 - recall)) if len(positives) else 0.0
    return model, threshold
