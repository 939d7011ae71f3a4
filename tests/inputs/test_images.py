"""Tests for matcher.inputs.images: the decode stage (file/bytes/PIL -> RGB PIL image)."""
from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib

from PIL import Image, ImageFile
import numpy as np
import pytest

from matcher.errors import ImageError
from matcher.inputs.images import (ALLOWED_FORMATS, DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, bytes_sha256, file_sha256,
                                   load_image, read_image_bytes)
from tests.badimages import SIXTEEN_BIT_VALUE, half_red_half_blue_jpeg, write_bad_images

CASES = {
    "ok.jpg": "ok",
    "corrupt.jpg": "unreadable",
    "truncated.jpg": "unreadable",
    "zero.jpg": "empty",
    "page.jpg": "not_an_image",
    "bomb.png": "too_large",
    "cmyk.jpg": "ok",
    "sixteen_bit.png": "ok",
    "palette_alpha.png": "ok",
    "exif_rotated.jpg": "ok",
    "animated.gif": "ok",
    "missing.jpg": "not_found",
}


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    """Folder holding the files written by write_bad_images."""
    folder = tmp_path_factory.mktemp("bad_images")
    write_bad_images(folder)
    return folder


def pixel(image: Image.Image, x: int, y: int) -> np.ndarray:
    """RGB value at (x, y) as an int array of shape (3,)."""
    return np.array(image.getpixel((x, y)), dtype=int)


def assert_colour(actual: np.ndarray, expected, tolerance: int = 12) -> None:
    assert np.abs(actual - np.array(expected)).max() <= tolerance, f"{actual} != {expected}"


def png_header_only(width: int, height: int) -> bytes:
    """A 1-bit grey PNG whose header claims width x height but that holds almost no pixel data."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


# --- every problem case -------------------------------------------------------------------


def test_write_bad_images_lists_every_case_and_skips_missing(tmp_path):
    started = time.perf_counter()
    expected = write_bad_images(tmp_path)
    assert time.perf_counter() - started < 1.0
    assert expected == CASES
    assert not (tmp_path / "missing.jpg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(CASES) - {"missing.jpg"})


@pytest.mark.parametrize("file_name", sorted(CASES))
def test_each_case_gives_its_status(bad_folder, file_name):
    status = CASES[file_name]
    if status == "ok":
        image = load_image(bad_folder / file_name)
        assert image.mode == "RGB"
        assert image.width > 0 and image.height > 0
        return
    with pytest.raises(ImageError) as caught:
        load_image(bad_folder / file_name)
    assert caught.value.kind == status
    message = str(caught.value)
    assert file_name in message
    assert "\n" not in message


def test_truncated_message_says_truncated(bad_folder):
    with pytest.raises(ImageError, match="truncated image data"):
        load_image(bad_folder / "truncated.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # global left untouched


def test_html_page_message_says_what_it_is(bad_folder):
    with pytest.raises(ImageError, match="HTML"):
        load_image(bad_folder / "page.jpg")


def test_directory_is_not_found(tmp_path):
    with pytest.raises(ImageError) as caught:
        load_image(tmp_path)
    assert caught.value.kind == "not_found"


@pytest.mark.parametrize(
    "data, what",
    [
        (encode(Image.new("RGB", (16, 16)), "ICO"), "ICO"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF"),
    ],
)
def test_known_but_unsupported_formats(data, what):
    with pytest.raises(ImageError, match=what) as caught:
        load_image(data, name="listing/thing.jpg")
    assert caught.value.kind == "unsupported_format"
    assert "listing/thing.jpg" in str(caught.value)


# --- pixels come out right ----------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    path.write_bytes(half_red_half_blue_jpeg(orientation=6))  # stored 60x40: red left, blue right
    image = load_image(path)
    assert image.size == (40, 60)  # turned 90 degrees clockwise
    assert_colour(pixel(image, 20, 10), (255, 0, 0))  # old left half is now the top
    assert_colour(pixel(image, 20, 50), (0, 0, 255))


def test_palette_transparency_becomes_white(bad_folder):
    image = load_image(bad_folder / "palette_alpha.png")
    assert_colour(pixel(image, 2, 8), (255, 255, 255), tolerance=0)  # transparent index 0
    assert_colour(pixel(image, 12, 8), (255, 0, 0), tolerance=0)


def test_sixteen_bit_is_scaled_not_clipped(bad_folder):
    image = load_image(bad_folder / "sixteen_bit.png")
    assert SIXTEEN_BIT_VALUE == 32768
    assert_colour(pixel(image, 5, 5), (128, 128, 128), tolerance=1)


def test_sixteen_bit_range_maps_to_full_eight_bit_range():
    ramp = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    image = load_image(encode(Image.fromarray(ramp), "PNG"))
    assert np.asarray(image)[0, :, 0].tolist() == [0, 1, 128, 255]


def test_cmyk_gives_plausible_rgb():
    quadrants = {  # CMYK ink -> expected RGB
        (255, 0, 0, 0): (0, 255, 255),
        (0, 255, 0, 0): (255, 0, 255),
        (0, 0, 255, 0): (255, 255, 0),
        (0, 0, 0, 255): (0, 0, 0),
    }
    cmyk = Image.new("CMYK", (64, 64))
    corners = [(0, 0), (32, 0), (0, 32), (32, 32)]
    for (x, y), ink in zip(corners, quadrants):
        cmyk.paste(ink, (x, y, x + 32, y + 32))
    image = load_image(encode(cmyk, "JPEG", quality=95))
    for (x, y), rgb in zip(corners, quadrants.values()):
        assert_colour(pixel(image, x + 16, y + 16), rgb, tolerance=20)


def test_animated_gif_gives_first_frame(bad_folder):
    image = load_image(bad_folder / "animated.gif")
    assert_colour(pixel(image, 8, 8), (255, 0, 0), tolerance=0)  # frame 1 red, frame 2 blue


def test_grey_and_alpha_modes():
    grey = load_image(Image.new("L", (4, 4), 77))
    assert pixel(grey, 0, 0).tolist() == [77, 77, 77]
    half_transparent = load_image(Image.new("LA", (4, 4), (0, 128)))
    assert_colour(pixel(half_transparent, 0, 0), (127, 127, 127), tolerance=1)


# --- input kinds --------------------------------------------------------------------------


def test_bytes_input_matches_path_input(bad_folder):
    path = bad_folder / "ok.jpg"
    data = path.read_bytes()
    from_path = np.asarray(load_image(path))
    for source in (data, bytearray(data), memoryview(data)):
        assert np.array_equal(np.asarray(load_image(source)), from_path)


def test_bytes_error_names_default_and_custom():
    with pytest.raises(ImageError, match="<bytes>"):
        load_image(b"hello, not an image")
    with pytest.raises(ImageError, match="listing/a.jpg") as caught:
        load_image(b"", name="listing/a.jpg")
    assert caught.value.kind == "empty"


def test_pil_input_is_converted_and_left_unchanged():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 255, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 5, 10))  # left half fully transparent
    image = load_image(rgba)
    assert image.mode == "RGB" and image is not rgba
    assert rgba.mode == "RGBA"
    assert_colour(pixel(image, 1, 5), (255, 255, 255), tolerance=0)
    assert_colour(pixel(image, 8, 5), (0, 0, 255), tolerance=0)


def test_pil_input_too_large_names_image():
    with pytest.raises(ImageError, match="<image>") as caught:
        load_image(Image.new("RGB", (100, 100)), max_pixels=99 * 100)
    assert caught.value.kind == "too_large"


def test_unsupported_source_type_is_a_type_error():
    with pytest.raises(TypeError):
        load_image(12345)


# --- speed guards -------------------------------------------------------------------------


def test_draft_side_decodes_big_jpeg_smaller():
    y, x = np.mgrid[0:1200, 0:1600]
    pixels = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    data = encode(Image.fromarray(pixels), "JPEG", quality=85)
    assert load_image(data).size == (1600, 1200)
    drafted = load_image(data, draft_side=200)
    assert drafted.mode == "RGB"
    assert drafted.width < 1600
    assert min(drafted.size) >= 200
    assert abs(drafted.width / drafted.height - 4 / 3) < 0.01


def test_draft_side_is_ignored_for_png():
    data = encode(Image.new("RGB", (400, 300)), "PNG")
    assert load_image(data, draft_side=50).size == (400, 300)


def test_too_large_is_checked_before_decoding(bad_folder, monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    started = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        load_image(bad_folder / "bomb.png")
    assert time.perf_counter() - started < 0.5
    assert caught.value.kind == "too_large"
    assert "8000x8000" in str(caught.value)


def test_max_pixels_is_a_parameter(bad_folder):
    assert 64 * 64 <= DEFAULT_MAX_PIXELS
    assert load_image(bad_folder / "ok.jpg", max_pixels=64 * 64).size == (64, 64)
    with pytest.raises(ImageError) as caught:
        load_image(bad_folder / "ok.jpg", max_pixels=64 * 64 - 1)
    assert caught.value.kind == "too_large"


@pytest.mark.parametrize("side", [30_000, 10_000])
def test_pil_bomb_guard_is_reported_as_too_large(side):
    # 30000^2 makes PIL raise DecompressionBombError; 10000^2 only warns, which must still fail.
    with pytest.raises(ImageError) as caught:
        load_image(png_header_only(side, side), name="bomb.png", max_pixels=10**9)
    assert caught.value.kind == "too_large"
    assert "bomb.png" in str(caught.value)


# --- bytes and hashes ---------------------------------------------------------------------


def test_read_image_bytes_and_hashes(bad_folder):
    path = bad_folder / "ok.jpg"
    data = read_image_bytes(path)
    assert data == path.read_bytes()
    assert file_sha256(path) == hashlib.sha256(data).hexdigest() == bytes_sha256(data)
    assert bytes_sha256(b"abc").startswith("ba7816bf")


def test_read_image_bytes_errors(bad_folder):
    with pytest.raises(ImageError) as caught:
        read_image_bytes(bad_folder / "zero.jpg", name="zero!")
    assert caught.value.kind == "empty" and "zero!" in str(caught.value)
    with pytest.raises(ImageError) as caught:
        read_image_bytes(bad_folder / "missing.jpg")
    assert caught.value.kind == "not_found"


def test_constants():
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"} == IMAGE_EXTENSIONS
    assert {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"} <= ALLOWED_FORMATS
    assert DEFAULT_MAX_PIXELS == 40_000_000
