"""Reading image files (matcher/inputs/files.py): regular files only, never blocking, never unbounded.

Every path that is no readable image file gives an ImageError with its exact kind and a one-line reason,
never another exception and never a hang (a regression fails by SIGALRM instead of hanging the run).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from matcher.errors import ImageError
from matcher.inputs import decode_catalog_images, scan_catalog
from matcher.inputs.images import file_sha256, load_image, read_image_bytes
from matcher.inputs.reader import read_listing
from tests.badimages import fail_if_blocked, write_bad_corpus, write_bad_images

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_bad_corpus(folder)


def kind_of(path, **options) -> tuple[str, str]:
    """(kind, message) of the ImageError that loading ``path`` raises, or ('ok', '')."""
    try:
        load_image(path, **options)
    except ImageError as exc:
        return exc.kind, str(exc)
    return "ok", ""


def test_every_corpus_entry_gives_its_exact_status(corpus):
    folder, expected = corpus
    with fail_if_blocked(20, [folder / "pipe.jpg"]):
        found = {name: kind_of(folder / name) for name in expected}
    assert {name: kind for name, (kind, _) in found.items()} == expected
    for name, (kind, message) in found.items():
        assert kind == "ok" or ("\n" not in message and "\r" not in message), (name, message)


def test_fifo_is_unreadable_and_never_opened(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with fail_if_blocked(20, [fifo]):
        assert kind_of(fifo) == ("unreadable", f"{fifo}: not a regular file (FIFO)")
        with pytest.raises(ImageError, match="FIFO"):
            read_image_bytes(fifo)
        with pytest.raises(OSError, match="not a regular file"):
            file_sha256(fifo)
        digest, error = read_listing(fifo, "pipe.jpg")
    assert digest is None and error.kind == "unreadable"


def test_a_device_is_never_read():
    # /dev/zero never ends: reading it whole would fill the memory
    assert kind_of("/dev/zero") == ("unreadable", "/dev/zero: not a regular file (character device)")
    assert kind_of("/dev/null")[0] == "unreadable"


def test_a_file_over_the_byte_limit_is_too_large_without_reading_it(tmp_path):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as handle:
        handle.truncate(2_000_000_001)  # a sparse 2 GB file
    kind, message = kind_of(big)
    assert kind == "too_large" and "2000.0 MB" in message and "limit" in message


def test_the_byte_limit_is_exact(tmp_path):
    path = tmp_path / "ten.jpg"
    path.write_bytes(b"0123456789")
    assert read_image_bytes(path, max_bytes=10) == b"0123456789"
    with pytest.raises(ImageError) as caught:
        read_image_bytes(path, max_bytes=9)
    assert caught.value.kind == "too_large"
    assert kind_of(path, max_bytes=9)[0] == "too_large"


def test_a_file_of_unknown_size_is_read_up_to_the_limit_only():
    # /proc files say they hold 0 bytes; they are read up to max_bytes + 1 and no further
    with pytest.raises(ImageError, match="more than") as caught:
        read_image_bytes("/proc/self/maps", max_bytes=16)
    assert caught.value.kind == "too_large"


def test_impossible_paths_are_not_found_with_their_reason(tmp_path):
    os.symlink("b.jpg", tmp_path / "a.jpg")
    os.symlink("a.jpg", tmp_path / "b.jpg")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    (tmp_path / "file.jpg").write_bytes(b"x")
    cases = {
        "nul\0byte.jpg": "contains a NUL byte",
        "a.jpg": "symlink loop",
        "a.jpg/inside.jpg": "symlink loop",
        "x" * 300 + ".jpg": "file name too long",
        "dangling.jpg": "dangling symbolic link",
        "file.jpg/inside.jpg": "not a folder",
        "missing.jpg": "no such file",
    }
    for name, reason in cases.items():
        kind, message = kind_of(tmp_path / name)
        assert kind == "not_found" and reason in message, (name, message)
        assert "\0" not in message
        digest, error = read_listing(tmp_path / name, name)
        assert digest is None and error.kind == "not_found"
    assert kind_of(tmp_path)[0] == "not_found"  # a folder


def test_permission_denied_is_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"x")
    real_open = os.open

    def refuse(name, *args, **kwargs):  # like chmod 0, which root would not feel
        if os.fspath(name) == os.fspath(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    kind, message = kind_of(path)
    assert kind == "unreadable" and message == f"{path}: cannot read file ({os.strerror(errno.EACCES)})"


def test_names_with_control_characters_give_one_line_messages(tmp_path):
    path = tmp_path / "two\nlines\r.jpg"
    path.write_bytes(b"")
    kind, message = kind_of(path)
    assert kind == "empty" and "\n" not in message and "two\\nlines\\r.jpg" in message
    kind, message = kind_of(b"junk", name="name\0with\tcontrols")
    assert kind == "not_an_image" and message.startswith("name\\x00with\\tcontrols: ")


def test_readable_files_give_the_same_bytes_and_pixels_as_before(tmp_path):
    # the bounded, non-blocking read returns exactly the file's bytes, so decoding is unchanged
    expected = write_bad_images(tmp_path)
    for name in (n for n, status in expected.items() if status == "ok"):
        path = tmp_path / name
        data = path.read_bytes()
        assert read_image_bytes(path) == data
        from_path, from_bytes = load_image(path), load_image(data)
        assert from_path.size == from_bytes.size
        assert np.array_equal(np.asarray(from_path), np.asarray(from_bytes))


def test_a_catalog_with_a_fifo_or_a_dangling_link_reports_them(tmp_path):
    brand = tmp_path / "Acme"
    brand.mkdir()
    write_bad_images(brand)
    os.mkfifo(brand / "pipe.jpg")
    os.symlink(brand / "gone.jpg", brand / "dangling.jpg")
    with fail_if_blocked(20, [brand / "pipe.jpg"]):
        items = scan_catalog(tmp_path)
    assert {i.path: i.sha256 for i in items if i.path.endswith(("pipe.jpg", "dangling.jpg"))} == {
        "Acme/pipe.jpg": "", "Acme/dangling.jpg": ""}
    with fail_if_blocked(20, [brand / "pipe.jpg"]):
        _, _, skipped = decode_catalog_images(tmp_path, items)
    statuses = {Path(s["path"]).name: s["status"] for s in skipped}
    assert statuses["pipe.jpg"] == "unreadable" and statuses["dangling.jpg"] == "not_found"
