"""Problem images for tests, generated at run time (small, well under a second in all).

Import it from tests: ``from tests.badimages import write_bad_images`` (or ``from badimages ...``
when ``tests/`` is on ``sys.path``).
"""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
import signal
import socket
import struct
from typing import Iterator

from PIL import Image
import numpy as np

# Header size of bomb.png: 64 megapixels is over matcher.inputs.images.DEFAULT_MAX_PIXELS (40 M)
# but under PIL's own bomb limit (~89 M), so it is the matcher's header check that rejects it.
BOMB_SIZE = (8000, 8000)
SIXTEEN_BIT_VALUE = 32768  # mid-grey on the 0..65535 scale; should load as ~128
RED = (255, 0, 0)
BLUE = (0, 0, 255)


def write_bad_images(folder: pathlib.Path) -> dict[str, str]:
    """Write one file per problem case into ``folder``.

    Parameters
    ----------
    folder : pathlib.Path
        An existing folder (e.g. pytest's ``tmp_path``).

    Returns
    -------
    dict of str to str
        ``{file name: expected status}``: ``'ok'`` for decodable-but-tricky files, else the
        expected ``ImageError.kind``. The entry ``'missing.jpg': 'not_found'`` is included
        but that file is deliberately NOT created.
    """
    folder = pathlib.Path(folder)
    expected: dict[str, str] = {}

    def write(file_name: str, data: bytes, status: str) -> None:
        (folder / file_name).write_bytes(data)
        expected[file_name] = status

    good_jpeg = _noise_jpeg(seed=0)
    write("ok.jpg", good_jpeg, "ok")
    write("truncated.jpg", good_jpeg[: len(good_jpeg) // 2], "unreadable")
    write("corrupt.jpg", _corrupt_jpeg(good_jpeg), "unreadable")
    write("zero.jpg", b"", "empty")
    write(
        "page.jpg",
        b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
        b"<body><h1>Not Found</h1></body></html>\n",
        "not_an_image",
    )
    write("bomb.png", _encode(Image.new("1", BOMB_SIZE), "PNG"), "too_large")
    write("cmyk.jpg", _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG"), "ok")
    sixteen = Image.fromarray(np.full((16, 16), SIXTEEN_BIT_VALUE, dtype=np.uint16))  # mode I;16
    write("sixteen_bit.png", _encode(sixteen, "PNG"), "ok")
    write("palette_alpha.png", _palette_alpha_png(), "ok")
    write("exif_rotated.jpg", half_red_half_blue_jpeg(orientation=6), "ok")
    write("animated.gif", _animated_gif(), "ok")
    expected["missing.jpg"] = "not_found"  # listed, never written
    return expected


def write_bad_corpus(folder: pathlib.Path) -> dict[str, str]:
    """Write every bad input a listings folder can hold into ``folder``: the images of ``write_bad_images``,
    more odd images and names, and paths that are no readable file (FIFO, dangling link, symlink loop,
    link to a device, a sparse file over the byte limit).

    Returns
    -------
    dict of str to str
        ``{'/'-joined path relative to folder: expected status}`` for every entry a walk of ``folder``
        should give a row (``missing.jpg`` is left out: it is not written). Also written, and not rows:
        ``.hidden.jpg`` (hidden) and ``notes.txt`` (no image suffix).
    """
    from matcher.inputs.files import MAX_FILE_BYTES

    folder = pathlib.Path(folder)
    expected = {k: v for k, v in write_bad_images(folder).items() if k != "missing.jpg"}

    def write(name: str, data: bytes, status: str) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        expected[name] = status

    write("drawing_svg.png", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="8" '
                             b'height="8"><rect width="8" height="8"/></svg>\n', "unsupported_format")
    write("one_pixel.png", _encode(Image.new("RGB", (1, 1), RED), "PNG"), "ok")
    write("strip_10000x20.png", _encode(Image.new("RGB", (10000, 20), BLUE), "PNG"), "ok")
    write("multipage.tif", _multipage_tiff(), "ok")
    odd_names = ["new\nline.jpg", "quo\"te's, comma.jpg", "ünïcødé 時計.JPG", "tab\tand\rreturn.jpeg",
                 "folder.jpg/inside.png"]
    for seed, name in enumerate(odd_names, start=10):
        write(name, _noise_jpeg(seed), "ok")  # a folder named like an image is walked, not read
    write(".hidden.jpg", _noise_jpeg(20), "ok")
    del expected[".hidden.jpg"]
    write("notes.txt", b"not a listing", "ok")
    del expected["notes.txt"]
    os.mkfifo(folder / "pipe.jpg")
    expected["pipe.jpg"] = "unreadable"
    os.symlink(folder / "nowhere.jpg", folder / "dangling.jpg")
    expected["dangling.jpg"] = "not_found"
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    expected.update({"loop_a.jpg": "not_found", "loop_b.jpg": "not_found"})
    os.symlink("/dev/zero", folder / "endless.jpg")
    expected["endless.jpg"] = "unreadable"
    with open(folder / "huge.jpg", "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    expected["huge.jpg"] = "too_large"
    if _unix_socket(folder / "socket.png"):
        expected["socket.png"] = "unreadable"
    try:  # a name that is not UTF-8 (Linux file systems take any bytes)
        (pathlib.Path(os.fsdecode(os.fsencode(folder) + b"/latin1_\xe9t\xe9.jpg"))).write_bytes(_noise_jpeg(30))
        expected[os.fsdecode(b"latin1_\xe9t\xe9.jpg")] = "ok"
    except (OSError, UnicodeError):
        pass
    return expected


@contextlib.contextmanager
def fail_if_blocked(seconds: float, fifos: list[pathlib.Path] = ()) -> Iterator[None]:
    """Raise TimeoutError in the main thread once ``seconds`` have passed, so that a read that blocks fails
    the test instead of hanging it. First each FIFO is opened and closed for writing: a reader blocked on it, in
    any thread or process, wakes up (at the end of the data) and the code under test can unwind."""
    def expire(signum, frame):
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def half_red_half_blue_jpeg(orientation: int = 6) -> bytes:
    """Return a 60x40 (width x height) JPEG, left half red, right half blue, with an EXIF orientation tag.

    With orientation 6 a viewer rotates it 90 degrees clockwise: 40x60, red on top, blue below.
    """
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:, :30] = RED
    pixels[:, 30:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = orientation  # 0x0112 = Orientation
    return _encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())


def _encode(image: Image.Image, image_format: str, **save_options) -> bytes:
    """Encode ``image`` in ``image_format`` and return the bytes."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **save_options)
    return buffer.getvalue()


def _noise_jpeg(seed: int) -> bytes:
    """A 64x64 JPEG of random colours (so that cutting it anywhere loses real data)."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    return _encode(Image.fromarray(pixels), "JPEG", quality=90)


def _corrupt_jpeg(jpeg: bytes) -> bytes:
    """A JPEG whose Huffman table (DHT segment) and middle are overwritten with random bytes.

    Garbage in the entropy-coded data alone is often silently "repaired" by libjpeg; a garbage
    Huffman table makes the decoder fail for sure.
    """
    rng = np.random.default_rng(1)
    data = bytearray(jpeg)
    table_start = data.index(b"\xff\xc4")  # DHT marker
    (table_length,) = struct.unpack(">H", data[table_start + 2 : table_start + 4])
    payload = slice(table_start + 4, table_start + 2 + table_length)
    data[payload] = rng.integers(0, 256, size=table_length - 2, dtype=np.uint8).tobytes()
    middle = slice(len(data) // 2, len(data) // 2 + 256)
    data[middle] = rng.integers(0, 256, size=256, dtype=np.uint8).tobytes()
    return bytes(data)


def _palette_alpha_png() -> bytes:
    """A 16x16 palette PNG: left half palette index 0 (transparent black), right half index 1 (red)."""
    image = Image.new("P", (16, 16), 0)
    image.paste(1, (8, 0, 16, 16))
    image.putpalette([0, 0, 0, *RED])
    return _encode(image, "PNG", transparency=0)


def _multipage_tiff() -> bytes:
    """A 2-page 24x16 TIFF: first page red, second page blue."""
    pages = [Image.new("RGB", (24, 16), colour) for colour in (RED, BLUE)]
    return _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def _unix_socket(path: pathlib.Path) -> bool:
    """Leave a Unix socket file at ``path``; False where that cannot be done (path too long, no AF_UNIX)."""
    try:
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(os.fspath(path))
    except (OSError, AttributeError):
        return False
    return True


def _animated_gif() -> bytes:
    """A 2-frame 16x16 GIF: first frame red, second frame blue."""
    frames = [Image.new("RGB", (16, 16), colour) for colour in (RED, BLUE)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
