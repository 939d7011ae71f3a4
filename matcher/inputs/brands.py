"""Brand facts beside the photos: ``brands.csv`` (``brand,typical_price``) at the catalog root, and price text.

The file is optional. When present, ``matcher index build`` / ``index add`` read it and keep the typical prices
in the index manifest (``typical_prices``), so a scan can tell a listing priced far below the brand's usual price.
Prices are plain numbers in one currency, the same as the listings' ``price`` column; currency symbols and
thousands separators are tolerated (``"$1,299.00"``, ``"12,50 €"``).

Every problem is a one-line ``CatalogError`` / ``ListingsError`` naming ``file:line:column``.
"""
from __future__ import annotations

import csv
from pathlib import Path
import re
from typing import Iterable, Sequence

from ..errors import CatalogError, ListingsError
from .listings import column_number, iter_listings

BRANDS_FILE = "brands.csv"
BRAND_COLUMNS = ("brand", "typical_price")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


def parse_price(text: str) -> float | None:
    """A price written by people -> float, or None when empty.

    Accepts "12.99", "$12.99", "12,99 €", "1,299.00", "1.299,00", "EUR 5". The last '.' or ',' is the decimal
    mark when 1-2 digits follow it; other separators group thousands. Raises ValueError otherwise.
    """
    cleaned = re.sub(r"^[A-Za-z]{3}(?=[\s\d$€£¥])|(?<=[\s\d])[A-Za-z]{3}$", "", text.strip())  # EUR 5, 5 USD
    cleaned = re.sub(r"[\s$€£¥]", "", cleaned)
    if not cleaned:
        if text.strip():
            raise ValueError(f"{text!r} is not a price")
        return None
    if cleaned.startswith("-"):
        raise ValueError(f"{text!r} is negative")
    if not re.fullmatch(r"[\d.,]+", cleaned):
        raise ValueError(f"{text!r} is not a price")
    last = max(cleaned.rfind("."), cleaned.rfind(","))
    if last >= 0 and 1 <= len(cleaned) - last - 1 <= 2:
        whole, decimals = cleaned[:last], cleaned[last + 1:]
    else:
        whole, decimals = cleaned, ""
    whole = re.sub(r"[.,]", "", whole) or "0"
    number = whole + ("." + decimals if decimals else "")
    if not _NUMBER.match(number):
        raise ValueError(f"{text!r} is not a price")
    return float(number)


def read_brand_prices(catalog_dir: str | Path, brands: Iterable[str]) -> dict[str, float]:
    """Typical price per brand from ``CATALOG_DIR/brands.csv``; {} when the file does not exist.

    brands : the catalog's brand folders; a row naming another brand is an error (a typo would silently
             disable the price signal).
    """
    path = Path(catalog_dir) / BRANDS_FILE
    if not path.is_file():
        return {}
    known = set(brands)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}:1:1: cannot read brands file ({exc})") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in BRAND_COLUMNS if c not in header]
    if missing:
        raise CatalogError(f"{path}:1:1: brands file needs columns {', '.join(BRAND_COLUMNS)}; "
                           f"missing {', '.join(missing)} (found: {', '.join(header) or 'nothing'})")
    brand_col, price_col = header.index("brand"), header.index("typical_price")
    prices: dict[str, float] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        brand = row[brand_col].strip() if brand_col < len(row) else ""
        raw = row[price_col].strip() if price_col < len(row) else ""
        if brand not in known:
            raise CatalogError(f"{path}:{line}:{brand_col + 1}: brand {brand!r} has no folder in the catalog "
                               f"(brands: {', '.join(sorted(known))})")
        if brand in prices:
            raise CatalogError(f"{path}:{line}:{brand_col + 1}: brand {brand!r} appears twice")
        try:
            price = parse_price(raw)
        except ValueError as exc:
            raise CatalogError(f"{path}:{line}:{price_col + 1}: typical_price {exc}") from None
        if not price:
            raise CatalogError(f"{path}:{line}:{price_col + 1}: typical_price of {brand!r} must be a "
                               f"positive number, got {raw!r}")
        prices[brand] = price
    return prices


def check_listing_prices(source: str | Path, columns: Sequence[str]) -> None:
    """Fail fast, before a scan starts, on a listings manifest whose ``price`` column holds something that is
    not a price (empty cells are fine: the price is then unknown). Folders and .txt manifests have no prices.

    columns : the manifest's columns (``manifest_columns`` of ``listings.py``), which the scan has already read
    """
    if "price" not in columns:
        return
    column = column_number(source, "price")
    for listing in iter_listings(source):
        raw = listing.fields.get("price")
        if raw is None:
            continue  # a JSONL line without a price
        try:
            parse_price(raw)
        except ValueError as exc:
            raise ListingsError(f"{source}:{listing.line}:{column}: price {exc}") from None
