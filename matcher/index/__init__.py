"""Index: the genuine references of a catalog, searchable, with their calibrated scorer, versioned on disk.

A published version is a folder of files described by its sealed manifest (``manifest.py``: every file's sha256,
checked before anything parses it), published atomically (``store.py``) and loaded as an ``IndexVersion``
(``version.py``): its references (``ReferenceIndex``) and scorer, with a lease that keeps garbage collection away.
"""
from . import store
from .manifest import check_files, model_name, published_manifest, read_manifest, region_runtime_of
from .references import ReferenceIndex
from .scorer import LogisticModel, Scorer
from .store import ReferenceRecord
from .vectors import VectorIndex
from .version import IndexVersion, reference_thumbnails
from .whitening import Whitening, fit_whitening

__all__ = ["IndexVersion", "ReferenceIndex", "ReferenceRecord", "Scorer", "LogisticModel", "store",
           "published_manifest", "read_manifest", "check_files", "region_runtime_of", "model_name",
           "reference_thumbnails",
           "VectorIndex", "Whitening", "fit_whitening"]
