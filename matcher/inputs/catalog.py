"""A brand catalog folder -> reference records.

Layout: ``CATALOG_DIR/<brand>/<image>`` or deeper, ``CATALOG_DIR/<brand>/<product>/<image>``. The first folder
level names the brand; every image below it is a genuine reference photo of that brand.
"""
from __future__ import annotations

from dataclasses import dataclass
import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

from PIL import Image

from ..errors import CatalogError, ImageError
from .images import IMAGE_EXTENSIONS, file_sha256, load_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogImage:
    """One reference photo found in a catalog folder.

    brand : the first-level folder name
    path : '/'-separated path relative to the catalog root, e.g. ``"Acme/bottles/front.jpg"``
    file : absolute path on disk
    sha256 : hex digest of the file's bytes (identical files are stored once); '' when the file cannot be read
             (not a regular file, dangling link...): ``decode_catalog_images`` then reports it as skipped
    """

    brand: str
    path: str
    file: Path
    sha256: str


def _image_files(folder: Path) -> Iterator[Path]:
    """Image files below ``folder``, recursively, sorted, hidden entries skipped."""
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(root) / name


def _absolute(file: Path) -> Path:
    """``file`` resolved, or made absolute where it cannot be (a symlink loop)."""
    try:
        return file.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(file))


def scan_catalog(catalog_dir: str | os.PathLike) -> list[CatalogImage]:
    """List the reference photos of a catalog folder, brand by brand, in sorted order.

    Byte-identical files (same sha256) are kept once: the first in sorted order wins.

    Raises
    ------
    CatalogError
        The folder is missing, is not a folder, or holds no brand folder with images.
    """
    root = Path(catalog_dir)
    if not root.exists():
        raise CatalogError(f"{root}: catalog folder not found")
    if not root.is_dir():
        raise CatalogError(f"{root}: catalog must be a folder of <brand>/<image> files, not a file")
    images: list[CatalogImage] = []
    seen: set[str] = set()
    for brand_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in _image_files(brand_dir):
            try:
                digest = file_sha256(file)
            except (OSError, ValueError):  # a dangling link, FIFO, unreadable file...: its decode reports why
                digest = ""
            if digest in seen:
                continue
            if digest:
                seen.add(digest)
            rel = file.relative_to(root).as_posix()
            images.append(CatalogImage(brand=brand_dir.name, path=rel, file=_absolute(file), sha256=digest))
    if not images:
        raise CatalogError(
            f"{root}: empty catalog: no images found in <brand>/ sub-folders "
            f"(expected e.g. {root}/<brand>/photo.jpg; extensions {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return images


def decode_catalog_images(catalog_dir: str | os.PathLike, items: Sequence[CatalogImage],
                          ) -> tuple[list[CatalogImage], list[Image.Image], list[dict]]:
    """Decode catalog photos: (the items decoded, their RGB images, the skipped ones), the first two in the same
    order. A photo that does not decode is logged and reported as ``{"path", "status", "error"}``, never fatal."""
    kept, images, skipped = [], [], []
    for item in items:
        try:
            images.append(load_image(item.file, name=f"{catalog_dir}/{item.path}"))
        except ImageError as exc:
            log.warning("skipping reference %s", exc)
            skipped.append({"path": item.path, "status": exc.kind, "error": str(exc)})
            continue
        kept.append(item)
    return kept, images, skipped
