"""Decode stage: turn a file, encoded bytes or a PIL image into an 8-bit RGB PIL image.

Every failure is raised as :class:`matcher.errors.ImageError` whose ``kind`` says what went
wrong (``not_found``, ``empty``, ``not_an_image``, ``unsupported_format``, ``too_large``,
``unreadable``) and whose message names the input and the problem on one line.
Files are read by :func:`matcher.inputs.files.read_image_bytes` (bounded, never blocking).
"""
from __future__ import annotations

import hashlib
import io
import os
import struct
from typing import Union
import warnings
import zlib

from PIL import Image, ImageOps, UnidentifiedImageError
import numpy as np

from matcher.errors import ImageError
from .files import MAX_FILE_BYTES, one_line, open_regular, path_text, read_image_bytes

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)
# MPO is how PIL names a JPEG with an extra embedded picture (many phone cameras).
ALLOWED_FORMATS: frozenset[str] = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
DEFAULT_MAX_PIXELS = 40_000_000

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Image.Image]

_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa"})
_WHITE_RGBA = (255, 255, 255, 255)
_HASH_CHUNK_BYTES = 1 << 20
# What PIL and its plugins raise on truncated or corrupt data (Image.open itself treats
# SyntaxError, IndexError, TypeError and struct.error as "this plugin cannot read it").
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def file_sha256(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 of a regular file's bytes, read in 1 MiB chunks (OSError and
    ``NotRegularFileError`` propagate; a FIFO or device is refused, never read)."""
    digest = hashlib.sha256()
    fd, _ = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_side: int | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> Image.Image:
    """Decode an image into a fully loaded mode-'RGB' PIL image.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray, memoryview or PIL.Image.Image
        A file path, the encoded bytes of an image, or an already opened PIL image
        (converted, not re-decoded; its format is not checked and ``draft_side`` is ignored).
    name : str, optional
        How to name the input in error messages; defaults to the path, ``'<bytes>'`` or ``'<image>'``.
    max_pixels : int
        Largest allowed width * height, checked from the header before decoding.
        PIL's own bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) still applies on top.
    draft_side : int, optional
        For JPEGs only: let the decoder downscale by 1/2, 1/4 or 1/8 (DCT scaling) while
        keeping both sides >= ``draft_side`` pixels. ``None`` decodes at full size.
    max_bytes : int
        For a path: the largest file read (see :func:`read_image_bytes`).

    Returns
    -------
    PIL.Image.Image
        Mode 'RGB', size (width, height) after EXIF orientation; the first frame of an
        animation; alpha composited on white; 16-bit data scaled to 8 bits (value // 256).

    Raises
    ------
    ImageError
        With ``kind`` in ``not_found``, ``empty``, ``not_an_image``, ``unsupported_format``,
        ``too_large``, ``unreadable``.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if draft_side is not None and draft_side < 1:
        raise ValueError(f"draft_side must be >= 1 or None, got {draft_side}")
    if isinstance(source, Image.Image):
        label = one_line(name) if name is not None else "<image>"
        _check_pixel_count(source.size, max_pixels, label)
        return _to_rgb(_load_and_orient(source, label), label)
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = one_line(name) if name is not None else "<bytes>"
        data = bytes(source)
        if not data:
            raise ImageError("empty", f"{label}: image data is empty (0 bytes)")
    elif isinstance(source, (str, os.PathLike)):
        label = one_line(name if name is not None else path_text(source))
        data = read_image_bytes(source, name=label, max_bytes=max_bytes)
    else:
        raise TypeError(f"load_image: expected a path, bytes or PIL image, got {type(source).__name__}")
    return _decode_bytes(data, label, max_pixels, draft_side)


def load_or_error(source: ImageSource, *, name: str | None = None,
                  draft_side: int | None = None) -> Image.Image | ImageError:
    """``load_image(source, name=name, draft_side=draft_side)``, or the ImageError it raised: a bad input is a
    value, so that a batch keeps one entry per input."""
    try:
        return load_image(source, name=name, draft_side=draft_side)
    except ImageError as exc:
        return exc


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """Downscale ``image`` (bilinear) so that its long side is at most ``max_side`` pixels; never upscales."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.BILINEAR)


def thumbnail_jpeg(image: Image.Image, *, long_side: int = 256, quality: int = 82) -> bytes:
    """A small JPEG of an RGB image (longer side ``long_side`` pixels at most), for reports."""
    small = image.copy()
    small.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def _decode_bytes(data: bytes, label: str, max_pixels: int, draft_side: int | None) -> Image.Image:
    """Identify, check and decode encoded image bytes (see :func:`load_image`)."""
    with warnings.catch_warnings():
        # Local to this block: PIL's "possible decompression bomb" warning becomes an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            kind, what = _describe_unidentified(data)
            problem = "not an image" if kind == "not_an_image" else "unsupported file format"
            raise ImageError(kind, f"{label}: {problem} ({what})") from None
        except _BOMB_ERRORS as exc:
            raise ImageError("too_large", f"{label}: image too large ({exc})") from exc
        except _DECODE_ERRORS as exc:
            raise ImageError("unreadable", f"{label}: corrupt image header ({_reason(exc)})") from exc
        with opened:
            if opened.format not in ALLOWED_FORMATS:
                allowed = ", ".join(sorted(ALLOWED_FORMATS - {"MPO"}))
                raise ImageError(
                    "unsupported_format",
                    f"{label}: unsupported image format {opened.format} (allowed: {allowed})",
                )
            _check_pixel_count(opened.size, max_pixels, label)
            if draft_side is not None and opened.format in _JPEG_FORMATS:
                opened.draft("RGB", (draft_side, draft_side))
            decoded = _load_and_orient(opened, label)
    return _to_rgb(decoded, label)


def _check_pixel_count(size: tuple[int, int], max_pixels: int, label: str) -> None:
    """Raise ``too_large`` if width * height of ``size`` (pixels) exceeds ``max_pixels``."""
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            "too_large",
            f"{label}: image is {width}x{height} = {width * height / 1e6:.1f} megapixels, "
            f"over the limit of {max_pixels / 1e6:.1f} megapixels",
        )


def _load_and_orient(image: Image.Image, label: str) -> Image.Image:
    """Decode the pixels (first frame) and return a new image with EXIF orientation applied."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image.load()
        except _BOMB_ERRORS as exc:
            raise ImageError("too_large", f"{label}: image too large ({exc})") from exc
        except _DECODE_ERRORS as exc:
            problem = "truncated" if "truncated" in str(exc).lower() else "corrupt"
            raise ImageError("unreadable", f"{label}: {problem} image data ({_reason(exc)})") from exc
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as exc:
        raise ImageError("unreadable", f"{label}: corrupt EXIF orientation data ({_reason(exc)})") from exc


def _to_rgb(image: Image.Image, label: str) -> Image.Image:
    """Convert a loaded image of any PIL mode to 8-bit 'RGB' (alpha composited on white)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        image = _integer_to_l(image)
    elif image.mode == "F":
        image = _float_to_l(image)
    try:
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, _WHITE_RGBA)
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageError(
            "unreadable", f"{label}: cannot convert pixel mode {image.mode} to RGB ({_reason(exc)})"
        ) from exc


def _integer_to_l(image: Image.Image) -> Image.Image:
    """Scale 16-bit ('I;16*') or 32-bit integer ('I') grey to 8-bit 'L'.

    Values are read as 16-bit (0..65535, clipped) and divided by 256, so 32768 -> 128.
    (PIL's own convert('L') clips instead, turning mid-grey 32768 into white 255.)
    """
    values = np.asarray(image).astype(np.int64)
    return Image.fromarray((np.clip(values, 0, 65535) // 256).astype(np.uint8))


def _float_to_l(image: Image.Image) -> Image.Image:
    """Map 32-bit float grey ('F') to 8-bit 'L'.

    Data whose maximum is <= 1.0 is taken as 0..1 and scaled by 255; otherwise values are
    taken as 0..255 and clipped.
    """
    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    if values.size and values.max() <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def _describe_unidentified(data: bytes) -> tuple[str, str]:
    """Guess what bytes PIL could not identify are.

    Returns
    -------
    (kind, description) : tuple of str
        ``kind`` is ``unsupported_format`` for known image/document formats PIL cannot
        decode here, else ``not_an_image``.
    """
    head = data[:1024]
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%PDF"):
        return "unsupported_format", "a PDF document"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif"):
        return "unsupported_format", f"a HEIF/AVIF image, brand {head[8:12].decode('ascii')}"
    if b"<svg" in text:
        return "unsupported_format", "an SVG drawing"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "not_an_image", "looks like an HTML web page"
    if text.startswith(b"<"):
        return "not_an_image", "looks like HTML or XML text"
    if head.startswith(b"PK\x03\x04"):
        return "not_an_image", "looks like a ZIP archive"
    if head.startswith(b"\x1f\x8b"):
        return "not_an_image", "looks like gzip-compressed data"
    first = head[:16]
    if all(32 <= byte < 127 or byte in (9, 10, 13) for byte in first):
        return "not_an_image", f"looks like text starting {first.decode('ascii')!r}"
    return "not_an_image", f"unknown format, first bytes {first.hex(' ')}"


def _reason(exc: BaseException) -> str:
    """One-line text of an exception, falling back to its class name."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
