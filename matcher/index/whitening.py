"""PCA-whitening of raw descriptors, fitted per index on its own (synthetic) data.

Whitening decorrelates descriptor dimensions and down-weights the directions that every photo shares
(background, lighting), so that cosine similarity reflects what distinguishes one product photo from another.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features.pooling import l2_normalise


@dataclass(frozen=True)
class Whitening:
    """A fitted projection: ``l2_normalise((x - mean) @ projection)``.

    mean : float32 (D,)
    projection : float32 (D, d)
    """

    mean: np.ndarray
    projection: np.ndarray

    @property
    def dim(self) -> int:
        """Output dimension d."""
        return int(self.projection.shape[1])

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Raw descriptors float32 (n, D) -> whitened, L2-normalised float32 (n, d)."""
        raw = np.asarray(raw, dtype=np.float32)
        return l2_normalise((raw - self.mean) @ self.projection)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "projection": self.projection}

    @classmethod
    def from_arrays(cls, arrays) -> "Whitening":
        return cls(mean=np.asarray(arrays["mean"], np.float32), projection=np.asarray(arrays["projection"], np.float32))


def fit_whitening(samples: np.ndarray, *, dim: int = 512, shrinkage: float = 0.1) -> Whitening:
    """Fit PCA-whitening on raw descriptors.

    Parameters
    ----------
    samples : float32 (n, D)
        Raw L2-normalised descriptors: references, synthetic copies of them and background photos.
    dim : int
        Output dimension d; capped at min(n - 1, D).
    shrinkage : float
        Added to every eigenvalue as a fraction of their mean before the inverse square root, so that tiny
        (noisy) directions are not blown up. 0 is plain whitening.
    """
    samples = np.asarray(samples, dtype=np.float64)
    n, full_dim = samples.shape
    dim = max(1, min(dim, n - 1, full_dim))
    mean = samples.mean(axis=0)
    centred = samples - mean
    covariance = centred.T @ centred / max(n - 1, 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1][:dim]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    scale = 1.0 / np.sqrt(eigenvalues + shrinkage * eigenvalues.mean() + 1e-12)
    projection = eigenvectors[:, order] * scale[None, :]
    return Whitening(mean=mean.astype(np.float32), projection=projection.astype(np.float32))
