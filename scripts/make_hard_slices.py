"""Benchmark slices of hard listings (#28): grids, collages and faded copies of a benchmark's references.

Usage::

    .venv/bin/python scripts/make_hard_slices.py BENCH_DIR OUT_DIR [--seed 0] [--per-slice 150] [--negatives 50]
                                                 [--fillers everyday|none-queries]

Writes ``OUT_DIR`` in the devbench layout: ``references/`` (a copy of ``BENCH_DIR/references``), ``queries/``,
``ground_truth.csv`` (devbench's columns ``query,reference_class,reference_image,kind`` plus ``slice``) and
``manifest.csv`` (devbench's columns; ``edits`` names the layout, e.g. ``grid3x3(slot=4,gutter=6)+jpeg(q=88)``,
so ``matcher eval`` also breaks copies down by layout). Per slice, ``--per-slice`` copies (kind ``copy``: one
reference, which stays in the index, pasted into the listing) and ``--negatives`` listings built the same way
from other photos only (kind ``none``, to set the operating point):

- ``grid``: 2x2, 3x3 or 4x4 tiles (a third each) with 2-12 px gutters; the copy fills one random tile.
- ``collage``: one large photo (about 2/3 of the sheet) beside 2-4 small ones; the copy is the large photo
  (``collage_large``) or a small one (``collage_small``), half each.
- ``faded``: the copy blended at 30-70% opacity over another photo (``faded_overlay``), or under a dense tiled
  text watermark (``faded_watermark``), half each.

Queries are made only from ``BENCH_DIR/references`` and "other photos" that show nothing of the catalog, never
from the benchmark's copy or same_product queries. ``--fillers everyday`` (default) takes the other photos from
the scikit-image photos bundled with the package (``matcher.inputs.everyday``; random crops of 15 photos, which
the index build also uses as backgrounds of its synthetic listings, so they are easier than real traffic);
``--fillers none-queries`` takes them from the benchmark's ``none`` queries (real everyday photos, read from
BENCH_DIR at run time, never copied into the project). The same seed gives byte-identical files.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
import shutil
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher.inputs.everyday import everyday_photos  # noqa: E402

SLICES = ("grid", "collage", "faded")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
GUTTER_COLOURS = ((255, 255, 255), (0, 0, 0), (235, 235, 235), (40, 40, 40))
WATERMARK_WORDS = ("SAMPLE", "shopmart", "DO NOT COPY", "bazaar.example", "PREVIEW", "best-deals")
TRUTH_COLUMNS = ("query", "reference_class", "reference_image", "kind", "slice")
MANIFEST_COLUMNS = ("file", "role", "kind", "reference_class", "reference_image", "source", "edits")


# ---------------------------------------------------------------- photo helpers
def cover(photo: Image.Image, width: int, height: int) -> Image.Image:
    """``photo`` scaled to cover ``width`` x ``height`` pixels and centre-cropped to it (what grids do)."""
    scale = max(width / photo.width, height / photo.height)
    w, h = max(width, round(photo.width * scale)), max(height, round(photo.height * scale))
    scaled = photo.resize((w, h), Image.BILINEAR)
    left, top = (w - width) // 2, (h - height) // 2
    return scaled.crop((left, top, left + width, top + height))


def contain(photo: Image.Image, width: int, height: int, fill: tuple) -> Image.Image:
    """``photo`` scaled to fit inside ``width`` x ``height`` pixels, centred on a ``fill`` sheet (a product shot)."""
    scale = min(width / photo.width, height / photo.height)
    scaled = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))), Image.BILINEAR)
    sheet = Image.new("RGB", (width, height), fill)
    sheet.paste(scaled, ((width - scaled.width) // 2, (height - scaled.height) // 2))
    return sheet


def place(photo: Image.Image, width: int, height: int, mode: str, fill: tuple) -> Image.Image:
    """``cover`` or ``contain`` a tile of ``width`` x ``height`` pixels."""
    return cover(photo, width, height) if mode == "cover" else contain(photo, width, height, fill)


class Fillers:
    """The other photos of the tiles and backgrounds: a random crop (30-100% of the area) of a random photo."""

    def __init__(self, photos: list[tuple[str, Image.Image]]):
        if not photos:
            raise SystemExit("no filler photos found")
        self.photos = photos

    def draw(self, rng: np.random.Generator) -> tuple[str, Image.Image]:
        """(source name, RGB crop) of one filler photo."""
        name, photo = self.photos[int(rng.integers(len(self.photos)))]
        area = rng.uniform(0.3, 1.0)
        w, h = max(8, round(photo.width * np.sqrt(area))), max(8, round(photo.height * np.sqrt(area)))
        w, h = min(w, photo.width), min(h, photo.height)
        left, top = int(rng.integers(photo.width - w + 1)), int(rng.integers(photo.height - h + 1))
        return name, photo.crop((left, top, left + w, top + h))


def load_fillers(bench: Path, source: str) -> Fillers:
    """``everyday``: the bundled scikit-image photos; ``none-queries``: the benchmark's ``none`` queries."""
    if source == "everyday":
        from matcher.inputs.everyday import SKIMAGE_PHOTOS
        return Fillers([(f"everyday:{n}", p) for n, p in zip(SKIMAGE_PHOTOS, everyday_photos())])
    with open(bench / "ground_truth.csv", newline="", encoding="utf-8") as f:
        nones = sorted(r["query"] for r in csv.DictReader(f) if r["kind"].strip() == "none")
    photos = []
    for rel in nones:
        with Image.open(bench / rel) as im:
            photos.append((rel, im.convert("RGB")))
    return Fillers(photos)


# ---------------------------------------------------------------- layouts
def grid(main: Image.Image | None, rng: np.random.Generator, fillers: Fillers,
         n: int) -> tuple[Image.Image, str, list]:
    """An n x n grid on a square sheet of 640-1080 px; ``main`` (None for a negative) in one random tile."""
    side, gutter = int(rng.integers(640, 1081)), int(rng.integers(2, 13))
    colour = GUTTER_COLOURS[int(rng.integers(len(GUTTER_COLOURS)))]
    mode = ("cover", "contain")[int(rng.integers(2))]
    tile = (side - (n + 1) * gutter) // n
    sheet = Image.new("RGB", (n * tile + (n + 1) * gutter,) * 2, colour)
    slot, sources = int(rng.integers(n * n)), []
    for k in range(n * n):
        if k == slot and main is not None:
            photo = main
        else:
            name, photo = fillers.draw(rng)
            sources.append(name)
        sheet.paste(place(photo, tile, tile, mode, (255, 255, 255)),
                    (gutter + (k % n) * (tile + gutter), gutter + (k // n) * (tile + gutter)))
    where = slot if main is not None else "-"
    return sheet, f"grid{n}x{n}(slot={where},gutter={gutter},{mode})", sources


def collage(main: Image.Image | None, rng: np.random.Generator, fillers: Fillers,
            main_large: bool) -> tuple[Image.Image, str, list]:
    """One large photo (2/3 of the long side) beside a strip of 2-4 small ones; ``main`` is the large one or a
    random small one (None for a negative). Landscape sheets put the strip on the right, portrait ones below."""
    long_side, small_count = int(rng.integers(720, 1081)), int(rng.integers(2, 5))
    gutter = int(rng.integers(0, 11))
    landscape = bool(rng.integers(2))
    big = round(long_side * 2 / 3)
    short_side = big
    strip = long_side - big - gutter
    cell = (short_side - (small_count - 1) * gutter) // small_count
    sheet = Image.new("RGB", (long_side, short_side) if landscape else (short_side, long_side),
                      GUTTER_COLOURS[int(rng.integers(len(GUTTER_COLOURS)))])
    slot = -1 if main_large else int(rng.integers(small_count))
    sources = []

    def photo_for(k: int) -> Image.Image:
        if k == slot and main is not None:
            return main
        name, photo = fillers.draw(rng)
        sources.append(name)
        return photo

    sheet.paste(place(photo_for(-1), big, big, "contain" if main_large else "cover", (255, 255, 255)), (0, 0))
    for k in range(small_count):
        offset = k * (cell + gutter)
        tile = place(photo_for(k), strip, cell, "cover", (255, 255, 255)) if landscape else \
            place(photo_for(k), cell, strip, "cover", (255, 255, 255))
        sheet.paste(tile, (big + gutter, offset) if landscape else (offset, big + gutter))
    name = "collage_large" if main_large else "collage_small"
    where = slot if main is not None else "-"
    return sheet, f"{name}(small={small_count},slot={where},gutter={gutter})", sources


def faded_overlay(main: Image.Image | None, rng: np.random.Generator,
                  fillers: Fillers) -> tuple[Image.Image, str, list]:
    """``main`` (a filler for a negative) at 30-70% opacity over another photo, both 480-800 px on the long side."""
    name, back = fillers.draw(rng)
    sources = [name]
    if main is None:
        name, main = fillers.draw(rng)
        sources.append(name)
    alpha = float(rng.uniform(0.3, 0.7))
    long_side = int(rng.integers(480, 801))
    scale = long_side / max(main.size)
    size = (max(1, round(main.width * scale)), max(1, round(main.height * scale)))
    out = Image.blend(cover(back, *size), main.resize(size, Image.BILINEAR), alpha)
    return out, f"faded_overlay(alpha={alpha:.2f})", sources


def faded_watermark(main: Image.Image | None, rng: np.random.Generator,
                    fillers: Fillers) -> tuple[Image.Image, str, list]:
    """``main`` (a filler for a negative) under rows of repeated text, rotated 20-45 degrees, at 35-70% opacity,
    the rows one and a half text heights apart (dense: the ink covers about a fifth of the pixels)."""
    sources = []
    if main is None:
        name, main = fillers.draw(rng)
        sources.append(name)
    long_side = int(rng.integers(480, 801))
    scale = long_side / max(main.size)
    base = main.resize((max(1, round(main.width * scale)), max(1, round(main.height * scale))), Image.BILINEAR)
    word = WATERMARK_WORDS[int(rng.integers(len(WATERMARK_WORDS)))]
    size, opacity, angle = int(rng.integers(18, 40)), float(rng.uniform(0.35, 0.7)), float(rng.uniform(20, 45))
    ink = (255, 255, 255) if rng.random() < 0.5 else (30, 30, 30)
    diagonal = int(np.hypot(*base.size)) + 2 * size
    layer = Image.new("L", (diagonal, diagonal), 0)
    draw, font = ImageDraw.Draw(layer), ImageFont.load_default(size=size)
    line = "   ".join([word] * (diagonal // max(1, int(font.getlength(word + "   "))) + 2))
    for row, y in enumerate(range(0, diagonal, round(size * 1.5))):
        draw.text((-(row * size) % (3 * size) - 3 * size, y), line, fill=int(255 * opacity), font=font)
    layer = layer.rotate(angle, resample=Image.BILINEAR)
    left, top = (diagonal - base.width) // 2, (diagonal - base.height) // 2
    mask = layer.crop((left, top, left + base.width, top + base.height))
    out = Image.composite(Image.new("RGB", base.size, ink), base, mask)
    return out, f"faded_watermark(size={size},opacity={opacity:.2f},angle={angle:.0f})", sources


def compose(slice_name: str, variant: int, main: Image.Image | None, rng: np.random.Generator,
            fillers: Fillers) -> tuple[Image.Image, str, list]:
    """One listing of ``slice_name``; ``variant`` (the query's ordinal within its slice and kind) spreads the
    layouts evenly: grid sizes 2, 3, 4 in turn, the collage's large / small copy and the two faded kinds."""
    if slice_name == "grid":
        return grid(main, rng, fillers, 2 + variant % 3)
    if slice_name == "collage":
        return collage(main, rng, fillers, main_large=variant % 2 == 0)
    return (faded_overlay if variant % 2 == 0 else faded_watermark)(main, rng, fillers)


# ---------------------------------------------------------------- the benchmark folder
def reference_files(bench: Path) -> list[str]:
    """``<class>/<file>`` of every reference image, sorted."""
    root = bench / "references"
    files = sorted(f"{c.name}/{f.name}" for c in root.iterdir() if c.is_dir() and not c.name.startswith(".")
                   for f in c.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
    if not files:
        raise SystemExit(f"{root}: no reference images")
    return files


def plan(references: list[str], per_slice: int, negatives: int, seed: int) -> list[dict]:
    """The queries, in a seeded random order: per slice ``per_slice`` copies (references drawn without
    replacement from a seeded permutation, cycled when a slice needs more) and ``negatives`` none queries."""
    rng = np.random.default_rng(seed)
    jobs = []
    for s, slice_name in enumerate(SLICES):
        order = rng.permutation(len(references))
        jobs += [{"slice": slice_name, "variant": i, "ref": references[order[i % len(order)]], "key": (s, 0, i)}
                 for i in range(per_slice)]
        jobs += [{"slice": slice_name, "variant": i, "ref": "", "key": (s, 1, i)} for i in range(negatives)]
    return [jobs[k] for k in rng.permutation(len(jobs))]


def make_slices(bench: Path, out: Path, *, seed: int = 0, per_slice: int = 150, negatives: int = 50,
                fillers: str = "everyday", progress=print) -> int:
    """Write the benchmark folder ``out`` (created; it must not hold queries yet); return the number of queries."""
    bench, out = Path(bench), Path(out)
    if (out / "queries").exists() and any((out / "queries").iterdir()):
        raise SystemExit(f"{out}/queries is not empty: choose a new OUT_DIR")
    references = reference_files(bench)
    pool = load_fillers(bench, fillers)
    (out / "queries").mkdir(parents=True, exist_ok=True)
    shutil.copytree(bench / "references", out / "references", dirs_exist_ok=True)
    jobs = plan(references, per_slice, negatives, seed)
    truth, manifest = [], [dict(zip(MANIFEST_COLUMNS, (f"references/{r}", "reference", "", r.split("/")[0], "",
                                                        f"references/{r}", ""))) for r in references]
    for n, job in enumerate(jobs, 1):
        rng = np.random.default_rng([seed, *job["key"]])   # per query: the files do not depend on the order
        main = None
        if job["ref"]:
            with Image.open(bench / "references" / job["ref"]) as im:
                main = im.convert("RGB")
        image, edit, sources = compose(job["slice"], job["variant"], main, rng, pool)
        quality = int(rng.integers(80, 96))
        name = f"queries/q{n:05d}.jpg"
        image.save(out / name, "JPEG", quality=quality)
        kind, cls = ("copy", job["ref"].split("/")[0]) if job["ref"] else ("none", "")
        ref = f"references/{job['ref']}" if job["ref"] else ""
        truth.append(dict(zip(TRUTH_COLUMNS, (name, cls, ref, kind, job["slice"]))))
        source = ";".join(([ref] if ref else []) + sources)
        manifest.append(dict(zip(MANIFEST_COLUMNS, (name, "query", kind, cls, ref, source,
                                                     f"{edit}+jpeg(q={quality})"))))
        if n % 100 == 0:
            progress(f"{n}/{len(jobs)} queries")
    for path, columns, rows in ((out / "ground_truth.csv", TRUTH_COLUMNS, truth),
                                (out / "manifest.csv", MANIFEST_COLUMNS, manifest)):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return len(jobs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench_dir", type=Path, help="benchmark in the devbench layout (its references are used)")
    parser.add_argument("out_dir", type=Path, help="new benchmark folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-slice", type=int, default=150, help="copy queries per slice")
    parser.add_argument("--negatives", type=int, default=50, help="none queries per slice (other photos only)")
    parser.add_argument("--fillers", choices=("everyday", "none-queries"), default="everyday",
                        help="where the other photos come from")
    args = parser.parse_args(argv)
    count = make_slices(args.bench_dir, args.out_dir, seed=args.seed, per_slice=args.per_slice,
                        negatives=args.negatives, fillers=args.fillers)
    print(f"{count} queries in {args.out_dir} (slices {', '.join(SLICES)}; fillers: {args.fillers})")


if __name__ == "__main__":
    main()
