"""Counterfeit-listing image matcher.

Finds listing images that reuse (edited copies) or imitate (other photos of the same product) the genuine
reference photos of protected brands::

    from matcher import Matcher, build_index
    build_index("demo/catalog", "indexes/demo")
    result = Matcher.open("indexes/demo").match("demo/listings/listing_01.jpg")
    print(result.verdict, result.brand, result.reference, result.score)

Data flow, one module per stage: images (decode) -> embed -> index (search) -> verify -> score -> scan/writers.
"""
from .api import Match, Matcher, MatchResult
from .build import BuildSettings, build_index
from .errors import (CatalogError, ImageError, IndexCorruptError, IndexMismatchError, IndexNotFoundError,
                     ListingsError, MatcherError)
from .lifecycle import add_to_index, gc_index, index_versions, remove_from_index
from .scan import ScanSummary, scan

__version__ = "0.1.0"

__all__ = [
    "Matcher", "MatchResult", "Match", "build_index", "BuildSettings", "scan", "ScanSummary",
    "add_to_index", "remove_from_index", "index_versions", "gc_index",
    "MatcherError", "ImageError", "CatalogError", "ListingsError",
    "IndexNotFoundError", "IndexCorruptError", "IndexMismatchError", "__version__",
]
