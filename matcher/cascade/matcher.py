"""``Matcher``: one loaded index version and the embedder that matches it; ``match`` images against it.

``match`` and ``match_many`` accept paths, encoded bytes or PIL images and return immutable ``MatchResult``
objects; a bad image becomes a result with a non-ok ``status`` rather than an exception.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence, Union

from PIL import Image

from ..errors import ImageError
from ..features import DescriptorConfig, Embedder
from ..features.matching import load_int8_matcher
from ..features.runtimes import INT8_FAMILY, RUNTIME_FAMILY, runtime_for
from ..index import IndexVersion, published_manifest, region_runtime_of, store
from ..inputs import load_or_error
from .run import run_cascade
from .scoring import MatchResult
from .settings import CascadeSettings

ImageInput = Union[str, os.PathLike, bytes, Image.Image]


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
        load_int8_matcher()  # loaded now rather than by the first listing in doubt
        return cls(Path(index_dir), version, embedder, settings)

    @property
    def typical_prices(self) -> dict[str, float]:
        """Brand -> typical price, from the catalog's brands.csv kept in the index ({} when it had none)."""
        return self.version.typical_prices

    def reload(self) -> bool:
        """Pick up the newest published version; returns True if it changed."""
        folder = store.current_version(self.index_dir)
        if folder is None or folder.name == self.version.folder.name:
            return False
        self.version = IndexVersion.open(self.index_dir, self.embedder.fingerprint())
        return True

    def match(self, image: ImageInput) -> MatchResult:
        """Match one listing image (a path, encoded bytes or a PIL image)."""
        return self.match_many([image])[0]

    def match_many(self, images: Iterable[ImageInput]) -> list[MatchResult]:
        """Match many images; one result per input, same order. Bad images get a non-ok status."""
        return self.match_decoded([load_or_error(item) for item in images])

    def match_decoded(self, decoded: Sequence[Image.Image | ImageError]) -> list[MatchResult]:
        """Match already decoded RGB images; ImageError entries pass through as failed results."""
        good = [im for im in decoded if not isinstance(im, ImageError)]
        results = iter(run_cascade(self.version, self.embedder, good, self.settings))
        return [MatchResult.failed(im) if isinstance(im, ImageError) else next(results) for im in decoded]
