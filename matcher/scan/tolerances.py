"""How far a decision taken from a scan's float16 descriptors can be from the fresh scan's, for ``rescan.py``.

A stored descriptor is a unit vector rounded to float16: each component is off by at most the unit roundoff
u = 2^-11 of its value, so its cosine with any float32 unit vector is off by at most u (Cauchy-Schwarz), and a
difference of two cosines by 2u. The calibrated models are logistic (``index.scorer.LogisticModel``): a feature
off by e moves the log-odds by e |weight / scale|. Summing over the features made of cosines bounds how far each
score can move; a re-scan trusts a decision only when it is ``safety`` times that far from its boundary.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cascade.evidence import BRAND_FEATURES, COPY_FEATURES
from ..cascade.gate import GATE_FEATURES
from ..index import Scorer
from ..index.scorer import LogisticModel

UNIT_ROUNDOFF = 2.0 ** -11  # float16
# features made of cosines (value: how many cosines each adds or subtracts); the others (inliers, colours, hues,
# the top-five share) are exact or handled apart
BRAND_COSINES = {"max_sim": 1, "second_sim": 1, "margin_next_brand": 2, "sim_minus_background": 2,
                 "background_sim": 1, "prototype_sim": 1, "prototype_margin": 2, "max_region_sim": 1,
                 "region_margin_next_brand": 2}
COPY_COSINES = {"sim": 1, "margin_next_ref": 2, "sim_minus_background": 2, "background_sim": 1, "region_sim": 1}
GATE_COSINES = {"max_sim": 1, "background_sim": 1, "window_sim": 1, "window_minus_background": 2}


@dataclass(frozen=True)
class Tolerances:
    """Margins for one index version's models (``of``), each ``safety`` times the worst float16 error.

    cosine : of a comparison between two cosines (a reference above another, a likeness above the threshold)
    brand_logit, copy_logit, gate_logit : of a brand score, a copy score and the gate score, in log-odds
    """

    cosine: float
    brand_logit: float
    copy_logit: float
    gate_logit: float

    @classmethod
    def of(cls, scorer: Scorer, safety: float = 2.0) -> "Tolerances":
        brand = max(_logit_error(model, BRAND_FEATURES, BRAND_COSINES)
                    for model in (scorer.brand_full, scorer.brand_global))
        copy = max(_logit_error(model, COPY_FEATURES, COPY_COSINES) for model in (scorer.copy_full, scorer.copy_global))
        gate = 0.0
        if scorer.gate is not None:  # its first feature is the global brand model's log-odds
            gate = _weights(scorer.gate)[0] * _logit_error(scorer.brand_global, BRAND_FEATURES, BRAND_COSINES) + \
                _logit_error(scorer.gate, GATE_FEATURES, GATE_COSINES)
        return cls(safety * 2 * UNIT_ROUNDOFF, safety * brand, safety * copy, float(safety * gate))


def logit(p: float) -> float:
    """log(p / (1 - p)), p clipped to [1e-9, 1 - 1e-9]."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    return float(np.log(p / (1 - p)))


def _weights(model: LogisticModel) -> np.ndarray:
    """|weight / scale| per feature: how far the log-odds move per unit of each raw feature."""
    return np.abs(model.weights / model.scale)


def _logit_error(model: LogisticModel, names: list[str], cosines: dict[str, int]) -> float:
    """The most ``model``'s log-odds can move when each cosine it reads (of ``names``' first columns) is off by
    UNIT_ROUNDOFF."""
    weights = _weights(model)
    return UNIT_ROUNDOFF * float(sum(w * cosines.get(name, 0) for name, w in zip(names, weights)))
