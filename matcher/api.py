"""The public Python API, in one place: open an index and match images, build and update indexes, scan.

    from matcher import Matcher, build_index
    build_index("demo/catalog", "indexes/demo")
    result = Matcher.open("indexes/demo").match("demo/listings/listing_01.jpg")
    print(result.verdict, result.brand, result.reference, result.score)

Everything here is re-exported by ``matcher`` itself; the stages live in the subpackages (``docs/architecture.md``).
"""
from .building import BuildSettings, add_to_index, build_index, gc_index, index_versions, remove_from_index
from .cascade import CascadeSettings, Match, Matcher, MatchResult
from .errors import (CatalogError, ImageError, IndexCorruptError, IndexMismatchError, IndexNotFoundError, ListingsError,
                     MatcherError)
from .scan import RescanSummary, ScanSummary, rescan, scan

