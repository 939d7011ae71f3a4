"""Counterfeit-listing image matcher.

Finds listing images that reuse (edited copies) or imitate (other photos of the same product) the genuine
reference photos of protected brands::

    from matcher import Matcher, build_index
    build_index("demo/catalog", "indexes/demo")
    result = Matcher.open("indexes/demo").match("demo/listings/listing_01.jpg")
    print(result.verdict, result.brand, result.reference, result.score)

The flow, one subpackage per stage: inputs (decode) -> features (embed) -> index (search) -> cascade (verify,
score) -> scan (write); building makes indexes, report and evaluation read results. Importing the package loads
numpy, FAISS and OpenCV; torch, timm and OpenVINO load when an index is opened or built.
"""
from .api import (BuildSettings, CascadeSettings, CatalogError, ImageError, IndexCorruptError, IndexMismatchError,
                  IndexNotFoundError, ListingsError, Match, Matcher, MatcherError, MatchResult, RescanSummary,
                  ScanSummary, add_to_index, build_index, gc_index, index_versions, remove_from_index, rescan, scan)

__version__ = "0.1.0"

__all__ = [
    "Matcher", "MatchResult", "Match", "CascadeSettings", "build_index", "BuildSettings", "scan", "ScanSummary",
    "rescan", "RescanSummary",
    "add_to_index", "remove_from_index", "index_versions", "gc_index",
    "MatcherError", "ImageError", "CatalogError", "ListingsError",
    "IndexNotFoundError", "IndexCorruptError", "IndexMismatchError", "__version__",
]
