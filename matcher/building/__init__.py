"""Building: make index versions from a catalog (build), change them without a rebuild (add, remove, gc), and
the synthetic listings and calibration that fit each version's whitening and scorer."""
from .augment import apply_chain, copy_edit, listing_edit
from .build import BuildSettings, build_index, synthetic_listings
from .calibration import SyntheticListing, fit_scorer, training_rows
from .edits import finish, random_crop
from .lifecycle import add_to_index, gc_index, index_versions, remove_from_index

__all__ = ["BuildSettings", "build_index", "add_to_index", "remove_from_index", "index_versions", "gc_index",
           "synthetic_listings", "SyntheticListing", "fit_scorer", "training_rows",
           # the seeded image edits synthetic listings are made with
           "copy_edit", "listing_edit", "apply_chain", "random_crop", "finish"]
