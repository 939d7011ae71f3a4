#!/usr/bin/env python3
"""(Re)generate the demo marketplace listings in demo/ from demo/catalog, deterministically.

Usage: python scripts/make_demo.py [--demo-dir demo] [--seed 2024]

Steps: hold out one photo per brand (moved once from catalog/ to holdout/; later runs reuse it), then
write listings/ (copies of catalog photos, other photos of the products, unrelated photos, a duplicate
pair and a broken file), listings.csv (what a marketplace export looks like), listings_truth.csv
(the answers) and README.md.
"""
from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
import os
from pathlib import Path
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from PIL import Image  # noqa: E402

from matcher.building import apply_chain, copy_edit, listing_edit, random_crop  # noqa: E402
from matcher.inputs import everyday_photos  # noqa: E402

COPIES_PER_BRAND = 2
UNRELATED_LISTINGS = 6
# Chains forced on the first copies so the demo always shows these edits; the other copies are random.
FORCED_CHAINS = (("crop", "jpeg"), ("hflip", "text"), ("downscale", "screenshot"), ("color_jitter", "collage"))
TITLES = ("{name} 1 L, fresh stock", "{name} - best price, fast delivery", "Original {name}, 6-pack",
          "{name} wholesale lot", "{name} NEW")
REPLICA_TITLES = ("AAA replica 1:1 {name}", "{name} 1:1 copy, top quality", "High copy {name} - cheap")
UNRELATED_TITLES = ("Art print, framed", "Home decor bundle", "Used item - like new", "Poster 50x70 cm",
                    "Gift set for him", "Wall picture, canvas", "Vintage collectible")
# brands.csv at the catalog root: invented typical shelf prices (EUR), the price signal of the suspicion score
TYPICAL_PRICES = {"Alpro-Fresh-Soy-Milk": "2.19", "Arla-Medium-Fat-Milk": "1.29", "Arla-Sour-Milk": "1.49",
                  "Oatly-Natural-Oatghurt": "2.79", "Tropicana-Apple-Juice": "3.49", "Tropicana-Juice-Smooth": "3.49",
                  "Valio-Vanilla-Yoghurt": "1.99", "Yoggi-Vanilla-Yoghurt": "1.89"}
BROKEN_HTML = ("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
               "<body><h1>Not Found</h1><p>The requested image was not found on this server.</p></body></html>\n")


@dataclass
class Listing:
    """One demo listing before it gets its final name."""

    image: Image.Image | None  # None for the broken file
    kind: str                  # copy / same_product / none / bad
    brand: str = ""
    reference: str = ""        # path relative to demo/catalog, copies only
    edits: str = ""
    title: str = ""
    price: str = ""


def _is_photo(path: Path) -> bool:
    return path.suffix.lower() == ".jpg" and not path.name.startswith(".")


def hold_out_originals(demo: Path) -> dict[str, Path]:
    """Move each brand's last non-iconic photo to holdout/<brand>/ (once) -> {brand: held-out file}."""
    held_out = {}
    for brand_dir in sorted(p for p in (demo / "catalog").iterdir() if p.is_dir()):
        holdout_dir = demo / "holdout" / brand_dir.name
        existing = sorted(p for p in holdout_dir.glob("*") if _is_photo(p)) if holdout_dir.is_dir() else []
        if not existing:
            photos = sorted(p for p in brand_dir.iterdir() if _is_photo(p) and not p.stem.endswith("_Iconic"))
            holdout_dir.mkdir(parents=True, exist_ok=True)
            existing = [Path(shutil.move(str(photos[-1]), holdout_dir / photos[-1].name))]
        held_out[brand_dir.name] = existing[0]
    return held_out


def _display_name(brand: str) -> str:
    return brand.replace("-", " ")


def _price(rng: np.random.Generator, low: float, high: float) -> str:
    return f"{rng.uniform(low, high):.2f}"


def same_product_listings(held_out: dict[str, Path], rng: np.random.Generator) -> list[Listing]:
    """One 'another photo of the product' listing per brand, lightly edited by the seller."""
    listings = []
    for brand, file in held_out.items():
        with Image.open(file) as photo:
            image, edits = listing_edit(photo.convert("RGB"), rng)
        title = str(rng.choice(TITLES)).format(name=_display_name(brand))
        listings.append(Listing(image, "same_product", brand, "", edits, title, _price(rng, 1.5, 4.5)))
    return listings


def copy_listings(demo: Path, rng: np.random.Generator, backgrounds) -> list[Listing]:
    """COPIES_PER_BRAND edited copies of different catalog photos per brand; about a third titled as replicas."""
    listings = []
    for brand_dir in sorted(p for p in (demo / "catalog").iterdir() if p.is_dir()):
        photos = sorted(p for p in brand_dir.iterdir() if _is_photo(p))
        for index in rng.choice(len(photos), size=COPIES_PER_BRAND, replace=False):
            file = photos[int(index)]
            with Image.open(file) as photo:
                if len(listings) < len(FORCED_CHAINS):
                    image, edits = apply_chain(photo, FORCED_CHAINS[len(listings)], rng, backgrounds)
                else:
                    image, edits = copy_edit(photo, rng, backgrounds)
            name = _display_name(brand_dir.name)
            if rng.random() < 0.35:
                title, price = str(rng.choice(REPLICA_TITLES)).format(name=name), _price(rng, 0.2, 0.9)
            else:
                title, price = str(rng.choice(TITLES)).format(name=name), _price(rng, 1.0, 4.5)
            reference = file.relative_to(demo / "catalog").as_posix()
            listings.append(Listing(image, "copy", brand_dir.name, reference, edits, title, price))
    return listings


def unrelated_listings(rng: np.random.Generator, backgrounds) -> list[Listing]:
    """Listings of unrelated photos (scikit-image samples): half as they are, half edited."""
    listings = []
    for number, index in enumerate(rng.choice(len(backgrounds), size=UNRELATED_LISTINGS, replace=False)):
        photo = backgrounds[int(index)]
        if number % 2:
            others = [b for i, b in enumerate(backgrounds) if i != index]
            image, edits = copy_edit(random_crop(photo, rng, 0.5), rng, others)
        else:
            image, edits = listing_edit(photo, rng)
        listings.append(Listing(image, "none", edits=edits, title=str(rng.choice(UNRELATED_TITLES)),
                                price=_price(rng, 3, 40)))
    return listings


def write_listings(demo: Path, listings: list[Listing], rng: np.random.Generator) -> None:
    """Shuffle, name listing_XX.jpg (the broken file stays broken.jpg), write images and both CSVs."""
    out_dir = demo / "listings"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    order = rng.permutation(len(listings))
    rows, images_written = [], 0
    for index in order:
        listing = listings[int(index)]
        if listing.image is None:
            name = "broken.jpg"
            (out_dir / name).write_text(BROKEN_HTML, encoding="utf-8")
        else:
            images_written += 1
            name = f"listing_{images_written:02d}.jpg"
            listing.image.save(out_dir / name, format="JPEG", quality=90)
        rows.append((f"listings/{name}", listing))
        print(f"{name:16s} {listing.kind:12s} {listing.reference or listing.brand:40s} {listing.edits}")
    _make_duplicate(out_dir, rows, f"listing_{images_written + 1:02d}.jpg")
    listing_ids = 100000 + rng.choice(900000, size=len(rows), replace=False)
    with open(demo / "listings.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "listing_id", "title", "price"])
        for (path, listing), listing_id in zip(rows, listing_ids):
            writer.writerow([path, f"MP-{listing_id}", listing.title, listing.price])
    with open(demo / "listings_truth.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["listing", "kind", "brand", "reference"])
        for path, listing in rows:
            writer.writerow([path, listing.kind, listing.brand, listing.reference])


def _make_duplicate(out_dir: Path, rows: list[tuple[str, Listing]], name: str) -> None:
    """Re-post the first copy listing byte for byte as ``name``: the same image in a plain ad at the brand's
    typical price (the first one is titled as a replica at a fraction of it)."""
    path, listing = next((p, item) for p, item in rows if item.kind == "copy")
    shutil.copyfile(out_dir / Path(path).name, out_dir / name)
    repost = Listing(None, listing.kind, listing.brand, listing.reference, listing.edits,
                     TITLES[0].format(name=_display_name(listing.brand)), TYPICAL_PRICES[listing.brand])
    rows.append((f"listings/{name}", repost))


README = """# Demo data

A small, self-contained example for trying the matcher: a brand catalog of genuine reference photos and a
folder of marketplace listings, some of which copy or imitate the catalog.

* `catalog/<brand>/` - genuine reference photos, 8 brands (the brand owners' side).
* `holdout/<brand>/` - one more genuine photo per brand, kept out of the catalog; the
  `same_product` listings are made from these ("another photo of the same product").
* `listings/` - the marketplace side: {counts}.
* `catalog/brands.csv` - `brand,typical_price`: the brands' usual prices (invented), kept in the index
  and used by the suspicion score to notice listings priced far below them.
* `listings.csv` - the listings as a marketplace export: `path,listing_id,title,price`
  (`path` relative to this folder). Titles and prices are invented; `listing_01.jpg` (titled as a
  1:1 copy at a fraction of the price) and its byte-identical repost (a plain ad at the typical
  price) show how the title and price raise the suspicion of the same image.
* `listings_truth.csv` - the answers: `listing,kind,brand,reference`, where kind is
  `copy` (an edited copy of `catalog/<reference>`), `same_product` (another photo of `brand`),
  `none` (unrelated) or `bad` (not an image). Two files are byte-identical reposts of one copy,
  and `listings/broken.jpg` is an HTML error page saved as .jpg.

Edits (crop, JPEG, overlays, screenshots, collages, ...) come from `matcher/building/augment.py` and `matcher/building/edits.py`.

## Regenerate

    python scripts/make_demo.py

The script is deterministic (fixed seed). The first run moves one photo per brand from `catalog/`
to `holdout/`; later runs reuse the held-out photos and rewrite `listings/` and the CSV files.

## Credits and licences

Catalog and holdout photos: the Grocery Store Dataset,
https://github.com/marcusklasson/GroceryStoreDataset, MIT License, Copyright (c) 2019 Marcus Klasson.
M. Klasson, C. Zhang, H. Kjellstrom, "A Hierarchical Grocery Store Image Dataset with Visual and
Semantic Labels", IEEE Winter Conference on Applications of Computer Vision (WACV), 2019.

Unrelated photos (the `none` listings, and backgrounds of collages and pasted products) are sample
images bundled with scikit-image (https://scikit-image.org, `skimage/data/`); their licences as
stated in the `skimage.data` documentation:

| file | source | licence |
|---|---|---|
| astronaut.png | Eileen Collins, NASA Great Images database | public domain |
| coffee.png | Rachel Michetti, courtesy of Pikolo Espresso Bar | CC0 |
| chelsea.png | Stefan van der Walt | CC0 |
| rocket.jpg | SpaceX (DSCOVR launch on Falcon 9) | public domain |
| hubble_deep_field.jpg | NASA, HubbleSite | public domain |
| ihc.png | Center for Microscopy And Molecular Imaging (CMMI) | no known copyright restrictions |
| retina.jpg | Mikael Haggstrom, Wikimedia Commons | CC0 1.0 |
| camera.png | Lav Varshney | CC0 |
| horse.png | Andreas Preuss (marauder), openclipart | CC0 |
| brick.png | CC0Textures (Bricks25) | CC0 |
| grass.png | linolafett, DeviantArt (Grass 01) | CC0 |
| gravel.png | CC0Textures (Gravel04) | CC0 |
| coins.png | Brooklyn Museum Collection | no known copyright restrictions |
| text.png | Wikipedia, File:Corner.png | public domain |
| clock_motion.png | Stefan van der Walt | public domain |
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default=Path(__file__).resolve().parent.parent / "demo", type=Path)
    parser.add_argument("--seed", default=2024, type=int)
    args = parser.parse_args(argv)
    demo = args.demo_dir
    rng = np.random.default_rng(args.seed)
    backgrounds = everyday_photos()
    held_out = hold_out_originals(demo)
    listings = (copy_listings(demo, rng, backgrounds) + same_product_listings(held_out, rng)
                + unrelated_listings(rng, backgrounds) + [Listing(None, "bad", title="Photo", price="1.00")])
    write_listings(demo, listings, rng)
    with open(demo / "catalog" / "brands.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows([("brand", "typical_price"), *sorted(TYPICAL_PRICES.items())])
    kinds = {}
    with open(demo / "listings_truth.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    counts = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    (demo / "README.md").write_text(README.replace("{counts}", counts), encoding="utf-8")
    print(f"wrote {sum(kinds.values())} listings to {demo / 'listings'} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
