"""Inputs: decode images, read listing folders and manifests, the reference catalog and its brands.csv.

Every bad input becomes an ``ImageError`` (images) or a one-line ``ListingsError`` / ``CatalogError`` naming the
file and the problem.
"""
from .brands import check_listing_prices, parse_price, read_brand_prices
from .catalog import CatalogImage, decode_catalog_images, scan_catalog
from .everyday import everyday_photos
from .images import file_sha256, load_image, load_or_error, shrink, thumbnail_jpeg
from .listings import Listing, WalkReport, iter_listings, manifest_columns, walk_report
from .reader import decode_for_matching, default_workers

__all__ = ["load_image", "load_or_error", "file_sha256", "shrink", "thumbnail_jpeg", "Listing", "iter_listings", "manifest_columns",
           "CatalogImage", "scan_catalog", "decode_catalog_images", "parse_price", "read_brand_prices",
           "check_listing_prices", "everyday_photos", "decode_for_matching", "default_workers", "WalkReport",
           "walk_report"]
