"""The Python API: ``Matcher.open(index_dir).match(image)``.

A Matcher holds one loaded index version and the embedder that matches it. ``match`` and ``match_many`` accept
paths, encoded bytes or PIL images and return immutable ``MatchResult`` objects; a bad image becomes a result
with a non-ok ``status`` rather than an exception.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, Union

from PIL import Image

from . import store
from .embed import DescriptorConfig, Embedder
from .errors import ImageError
from .images import load_image
from .pipeline import CascadeSettings, ListingOutcome, run_cascade
from .runtime import INT8_FAMILY, RUNTIME_FAMILY, runtime_for
from .score import VERDICT_NO_MATCH
from .version import IndexVersion, published_manifest, region_runtime_of

ImageInput = Union[str, os.PathLike, bytes, Image.Image]


@dataclass(frozen=True)
class Match:
    """One candidate brand: its best reference photo and calibrated scores (probabilities in [0, 1])."""

    brand: str
    reference: str  # path relative to the catalog root
    score: float  # P(the listing shows this brand's product)
    copy_score: float  # P(the listing is an edited copy of ``reference``)
    similarity: float  # cosine of whitened global descriptors
    inliers: int  # SIFT inliers with ``reference``; -1 when not verified
    # verified inlier pairs (listing x, y, reference x, y), each normalised to [0, 1] by its image's size
    keypoints: tuple[tuple[float, float, float, float], ...] = ()


@dataclass(frozen=True)
class MatchResult:
    """What the engine says about one listing image.

    status : ``ok`` or an error kind (``not_found``, ``unreadable``, ``not_an_image``, ``too_large``, ...)
    verdict : ``copy``, ``same_product`` or ``no_match``
    brand, reference, score : the best match (None / 0.0 when there is none or the image failed)
    matches : candidate brands, best first
    checks : how far the cascade went (``pipeline.py``): ``full`` (SIFT verification, and region search unless a
        candidate verified conclusively), ``global`` (stopped by the gate after the cheap global stage),
        ``dismissed`` (unlike any listing of the catalog: ``likeness.py``), or "" when the image failed
    """

    status: str
    error: str = ""
    verdict: str = VERDICT_NO_MATCH
    brand: str | None = None
    reference: str | None = None
    score: float = 0.0
    matches: tuple[Match, ...] = ()
    checks: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failed(cls, error: ImageError) -> "MatchResult":
        return cls(status=error.kind, error=str(error))

    @classmethod
    def from_outcome(cls, outcome: ListingOutcome) -> "MatchResult":
        matches = tuple(Match(b.brand, b.reference, round(b.score, 6), round(b.copy_score, 6),
                              round(b.similarity, 6), b.inliers, b.keypoints) for b in outcome.brands)
        ev = outcome.evidence
        checks = "full" if ev.verified else "dismissed" if ev.dismissed else "global"
        if not matches:
            return cls(status="ok", checks=checks)
        best = matches[0]
        return cls(status="ok", verdict=outcome.verdict, brand=best.brand, reference=best.reference,
                   score=best.score, matches=matches, checks=checks)


def load_embedder_for(index_dir: str | Path, *, device: str = "cpu", threads: int | None = None) -> Embedder:
    """An embedder configured as the index's manifest says (backbone, input sizes, pooling, runtime family of the
    CNN and of the region crops)."""
    _, manifest = published_manifest(index_dir)
    fingerprint = manifest.get("fingerprint", {})
    config = DescriptorConfig.from_dict(fingerprint.get("descriptor", DescriptorConfig().as_dict()))
    runtime = runtime_for(fingerprint.get("runtime", RUNTIME_FAMILY), device)
    # region crops as the index's scorer saw them
    regions = "int8" if region_runtime_of(fingerprint) == INT8_FAMILY and device == "cpu" else "same"
    return Embedder(config, device=device, threads=threads, runtime=runtime, region_runtime=regions)


class Matcher:
    """Matches listing images against one index version.

    Use ``Matcher.open(index_dir)``; ``reload()`` switches to the newest published version.
    """

    def __init__(self, index_dir: Path, version: IndexVersion, embedder: Embedder,
                 settings: CascadeSettings = CascadeSettings()):
        self.index_dir = Path(index_dir)
        self.version = version
        self.embedder = embedder
        self.settings = settings

    @classmethod
    def open(cls, index_dir: str | os.PathLike, *, device: str = "cpu", threads: int | None = None,
             settings: CascadeSettings = CascadeSettings()) -> "Matcher":
        """Load the published version of ``index_dir``; refuses an index made by another model or preprocessing."""
        embedder = load_embedder_for(index_dir, device=device, threads=threads)
        version = IndexVersion.open(index_dir, embedder.fingerprint())
        return cls(Path(index_dir), version, embedder, settings)

    @property
    def typical_prices(self) -> dict[str, float]:
        """Brand -> typical price, from the catalog's brands.csv kept in the index ({} when it had none)."""
        return dict(self.version.manifest.get("typical_prices", {}))

    def reload(self) -> bool:
        """Pick up the newest published version; returns True if it changed."""
        folder = store.current_version(self.index_dir)
        if folder is None or (self.version.folder and folder.name == self.version.folder.name):
            return False
        self.version = IndexVersion.open(self.index_dir, self.embedder.fingerprint())
        return True

    def match(self, image: ImageInput) -> MatchResult:
        """Match one listing image (a path, encoded bytes or a PIL image)."""
        return self.match_many([image])[0]

    def match_many(self, images: Iterable[ImageInput]) -> list[MatchResult]:
        """Match many images; one result per input, same order. Bad images get a non-ok status."""
        decoded: list[Image.Image | ImageError] = []
        for item in images:
            try:
                decoded.append(load_image(item))
            except ImageError as exc:
                decoded.append(exc)
        return self.match_decoded(decoded)

    def match_decoded(self, decoded: Sequence[Image.Image | ImageError]) -> list[MatchResult]:
        """Match already decoded RGB images; ImageError entries pass through as failed results."""
        good = [im for im in decoded if not isinstance(im, ImageError)]
        outcomes = iter(run_cascade(self.version, self.embedder, good, self.settings))
        return [MatchResult.failed(im) if isinstance(im, ImageError) else MatchResult.from_outcome(next(outcomes))
                for im in decoded]
