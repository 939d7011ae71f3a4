"""A published index version, loaded: its manifest, references and scorer.

``IndexVersion.open(index_dir, fingerprint)`` reads the published version, checks every file against the
manifest and refuses an index made by another model, weights, preprocessing or format.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path


from . import store
from ..errors import ImageError, IndexCorruptError
from ..inputs import load_image, thumbnail_jpeg
from .manifest import check_compatible, check_files, published_manifest
from .references import ReferenceIndex, _read_thumbnails
from .scorer import Scorer

SCORER_FILE = "scorer.json"


@dataclass(frozen=True)
class IndexVersion:
    """A published index version, loaded.

    manifest : the version's manifest.json (``manifest.py``)
    folder : the version folder
    refs : its references, searchable (``references.py``)
    scorer : its calibrated models and thresholds (``scorer.py``)
    """

    manifest: dict
    folder: Path
    refs: ReferenceIndex
    scorer: Scorer

    @property
    def typical_prices(self) -> dict[str, float]:
        """Brand -> typical price, from the catalog's brands.csv kept in the index ({} when it had none)."""
        return dict(self.manifest.get("typical_prices", {}))

    @classmethod
    def open(cls, index_dir: str | Path, fingerprint: dict | None = None) -> "IndexVersion":
        """Load the published version of ``index_dir``, with the evidence its build recorded (prototypes, colour).

        fingerprint : the embedder's ``fingerprint()``; when given, a different one is refused.
        """
        index_dir = Path(index_dir)
        folder, manifest = published_manifest(index_dir)
        if fingerprint is not None:
            check_compatible(manifest, fingerprint, index_dir)
        check_files(folder, manifest)
        built = manifest.get("build_settings", {})
        try:
            refs = ReferenceIndex.load(folder, with_prototypes=built.get("brand_prototypes", True),
                                       colour_check=built.get("colour_check", True))
            scorer = Scorer.from_dict(json.loads((folder / SCORER_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise IndexCorruptError(f"{folder}: cannot read index files ({exc})") from None
        return cls(manifest=manifest, folder=folder, refs=refs, scorer=scorer)


def reference_thumbnails(index_dir: str | Path) -> dict[str, bytes]:
    """Reference path (as in results' ``reference``) -> JPEG thumbnail of the published version.

    An index made before thumbnails were stored falls back to the photos in its catalog folder, when it still
    exists; references found in neither are left out.
    """
    folder, manifest = published_manifest(index_dir)
    references = store.read_references(folder / "references.csv")
    stored = _read_thumbnails(folder)
    if stored:
        return {r.path: stored[r.id] for r in references if r.id in stored}
    catalog = Path(manifest.get("catalog", ""))
    found = {}
    for r in references:
        try:
            found[r.path] = thumbnail_jpeg(load_image(catalog / r.path))
        except ImageError:
            continue
    return found
