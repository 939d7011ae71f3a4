"""Scanning a catalog folder into reference records."""
import hashlib

import pytest

from matcher.errors import CatalogError
from matcher.inputs.catalog import scan_catalog


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_scan_catalog_layout(tmp_path):
    root = tmp_path / "catalog"
    write(root / "Acme" / "front.JPG", b"acme-front")
    write(root / "Acme" / "bottles" / "side.png", b"acme-side")
    write(root / "Acme" / "bottles" / ".hidden.jpg", b"hidden file")
    write(root / "Acme" / ".thumbs" / "thumb.jpg", b"hidden folder")
    write(root / "Acme" / "notes.txt", b"not an image")
    write(root / "Beta" / "b.WebP", b"beta-b")
    write(root / "Beta" / "b2.webp", b"beta-b")  # duplicate of b.WebP in the same folder
    write(root / "Beta" / "Shoes" / "a.JpEg", b"beta-a")
    write(root / "Beta" / "Shoes" / "reuse.jpg", b"acme-front")  # duplicate of another brand's photo
    write(root / ".cache" / "x.jpg", b"hidden brand")
    write(root / "loose.jpg", b"not inside a brand folder")

    images = scan_catalog(root)
    paths = [im.path for im in images]
    assert sorted(paths) == sorted(["Acme/front.JPG", "Acme/bottles/side.png", "Beta/b.WebP", "Beta/Shoes/a.JpEg"])
    assert [im.brand for im in images] == ["Acme", "Acme", "Beta", "Beta"]  # brand by brand, sorted
    assert scan_catalog(str(root)) == images  # deterministic, accepts str
    for im in images:
        assert im.file.is_absolute() and im.file == (root / im.path).resolve()
        assert im.sha256 == hashlib.sha256(im.file.read_bytes()).hexdigest()
    assert len({im.sha256 for im in images}) == len(images)


def test_scan_catalog_duplicates_keep_first_in_sorted_order(tmp_path):
    root = tmp_path / "catalog"
    write(root / "Zeta" / "a.jpg", b"same bytes")
    write(root / "Alpha" / "z.jpg", b"same bytes")
    write(root / "Alpha" / "y.png", b"other bytes")
    write(root / "Alpha" / "x.png", b"other bytes")
    write(root / "Zeta" / "b.jpg", b"zeta own")
    images = scan_catalog(root)
    assert [im.path for im in images] == ["Alpha/x.png", "Alpha/z.jpg", "Zeta/b.jpg"]


def test_scan_catalog_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CatalogError, match="not found") as err:
        scan_catalog(missing)
    assert str(missing) in str(err.value)


def test_scan_catalog_file_instead_of_folder(tmp_path):
    file = write(tmp_path / "catalog.jpg", b"an image, not a folder")
    with pytest.raises(CatalogError) as err:
        scan_catalog(file)
    assert str(file) in str(err.value)


@pytest.mark.parametrize("layout", ["nothing", "only_loose_images", "no_images_in_brands", "only_hidden"])
def test_scan_catalog_empty(tmp_path, layout):
    root = tmp_path / "catalog"
    root.mkdir()
    if layout == "only_loose_images":
        write(root / "photo.jpg", b"loose")
    elif layout == "no_images_in_brands":
        write(root / "Acme" / "readme.txt", b"text")
        (root / "Beta").mkdir()
    elif layout == "only_hidden":
        write(root / "Acme" / ".photo.jpg", b"hidden")
        write(root / ".git" / "x.jpg", b"hidden brand")
    with pytest.raises(CatalogError, match="empty catalog") as err:
        scan_catalog(root)
    assert str(root) in str(err.value)
