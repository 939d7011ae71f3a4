"""The calibrated scorer an index keeps: logistic models fitted at build, with the operating threshold.

Evidence features (``cascade.evidence``) go through small logistic models fitted at index build on synthetic
listings made from the catalog itself (``building.calibration``), so a score is a probability with one meaning for
every listing and brand:

- ``brand score``: P(the listing shows this brand's product: an edited copy or another photo of it);
- ``copy score``: P(the listing is an edited copy of this very reference photo).

Each comes in two flavours: a *global* model that reads only the cheap global-descriptor features, used for
listings that the cascade never verifies, and a *full* model that also reads regions and local-feature inliers.
The cascade turns scores into verdicts in ``cascade.scoring``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogisticModel:
    """p = sigmoid(((x[:, :n] - mean) / scale) @ weights + bias), reading the first n feature columns.

    mean, scale, weights : float64 (n,)
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    @property
    def n_features(self) -> int:
        return int(len(self.weights))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """float (m, >= n) -> probabilities float64 (m,)."""
        x = (np.asarray(features, np.float64)[:, : self.n_features] - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-np.clip(x @ self.weights + self.bias, -40, 40)))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist(), "bias": float(self.bias)}

    @classmethod
    def from_dict(cls, d: dict) -> "LogisticModel":
        return cls(np.asarray(d["mean"], np.float64), np.asarray(d["scale"], np.float64),
                   np.asarray(d["weights"], np.float64), float(d["bias"]))


def fit_logistic(features: np.ndarray, labels: np.ndarray, *, n_features: int | None = None,
                 l2: float = 1.0, iterations: int = 50, sample_weight: np.ndarray | None = None,
                 signs: np.ndarray | None = None) -> LogisticModel:
    """L2-regularised logistic regression by Newton's method, optionally with sign-constrained weights.

    Parameters
    ----------
    features : float (m, F); only the first ``n_features`` columns are used
    labels : bool or {0, 1} (m,)
    l2 : penalty on the weights of the standardised features (the bias is not penalised)
    sample_weight : float (m,) >= 0, or None for all ones; a row of weight k counts as k copies of it
    signs : (n,) of -1 / 0 / +1, or None: a feature with sign -1 may only lower the probability, +1 only raise it,
        0 is free. Correlated features can otherwise get a weight of the wrong sign that the training rows
        happen to tolerate and that rows unlike them turn into a wrong score. Active set: the worst violator is
        fixed at 0 and the rest refitted, until no weight has a forbidden sign.
    """
    n = features.shape[1] if n_features is None else n_features
    x = np.asarray(features, np.float64)[:, :n]
    y = np.asarray(labels, np.float64)
    weight = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    allowed = np.zeros(n + 1) if signs is None else np.append(np.asarray(signs, np.float64)[:n], 0.0)
    mean = np.average(x, axis=0, weights=weight)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=weight)) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    fixed_at_zero = np.zeros(n + 1, bool)
    while True:
        penalty = np.where(fixed_at_zero, 1e12, l2)
        penalty[-1] = 0.0
        w = _newton(z, y, weight, penalty, iterations)
        wrong_sign = np.where(fixed_at_zero, 0.0, -allowed * w)
        if wrong_sign.max() <= 1e-9:
            break
        fixed_at_zero[int(np.argmax(wrong_sign))] = True
    w[fixed_at_zero] = 0.0
    return LogisticModel(mean=mean, scale=scale, weights=w[:-1], bias=float(w[-1]))


def _newton(z: np.ndarray, y: np.ndarray, weight: np.ndarray, penalty: np.ndarray, iterations: int) -> np.ndarray:
    """Weights (n + 1,) minimising the weighted log-loss + 0.5 * sum(penalty * w**2); z (m, n + 1) has a 1s column."""
    w = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -40, 40)))
        gradient = z.T @ (weight * (p - y)) + penalty * w
        hessian = (z * (weight * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


@dataclass(frozen=True)
class Scorer:
    """The four fitted models and the index's operating threshold (a brand-score probability)."""

    brand_global: LogisticModel
    brand_full: LogisticModel
    copy_global: LogisticModel
    copy_full: LogisticModel
    threshold: float = 0.5
    verify_gate: float = 0.02  # without a gate model: global brand scores below this skip the expensive stages
    gate: LogisticModel | None = None  # cascade.gate: P(worth the expensive stages) from cheap features
    gate_threshold: float = 0.0
    likeness_threshold: float | None = None  # likeness.py: listings less like the catalog's skip the expensive stages

    def to_dict(self) -> dict:
        d = {
            "brand_global": self.brand_global.to_dict(), "brand_full": self.brand_full.to_dict(),
            "copy_global": self.copy_global.to_dict(), "copy_full": self.copy_full.to_dict(),
            "threshold": self.threshold, "verify_gate": self.verify_gate,
        }
        if self.gate is not None:
            d.update(gate=self.gate.to_dict(), gate_threshold=self.gate_threshold)
        if self.likeness_threshold is not None:
            d["likeness_threshold"] = self.likeness_threshold
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Scorer":
        models = {k: LogisticModel.from_dict(d[k]) for k in ("brand_global", "brand_full", "copy_global", "copy_full")}
        gate = LogisticModel.from_dict(d["gate"]) if d.get("gate") else None
        return cls(**models, threshold=float(d["threshold"]), verify_gate=float(d["verify_gate"]), gate=gate,
                   gate_threshold=float(d.get("gate_threshold", 0.0)),
                   likeness_threshold=None if d.get("likeness_threshold") is None else float(d["likeness_threshold"]))
