"""Read an image file's bytes, boundedly and without ever blocking.

Only a regular file is read: a FIFO, device or socket is ``unreadable`` without being opened (so it cannot
hang a scan or feed it endless bytes), a folder is ``not_found``. Files are opened non-blocking and at most
``MAX_FILE_BYTES`` + 1 bytes are read: a larger file is ``too_large``, usually known from its size alone.
A path that names no file (NUL byte, symlink loop, name too long, dangling symlink) is ``not_found``. Every
failure is an ``ImageError`` with that ``kind`` and a one-line message; none is an exception of another type.
"""
from __future__ import annotations

import errno
import os
import stat

from matcher.errors import ImageError

# Largest image file read, in bytes. 256 MB holds any image under images.DEFAULT_MAX_PIXELS even stored
# uncompressed (40 megapixels of 16-bit RGB is 240 MB); a photo is typically a few MB.
MAX_FILE_BYTES = 256_000_000
_READ_CHUNK_BYTES = 1 << 16
# Non-blocking: opening a FIFO never waits for a writer (the type check refuses it before that anyway).
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))
_NOT_REGULAR = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                (stat.S_ISSOCK, "socket"))
# Control characters (newline, NUL...) and the lone surrogates of undecodable file-name bytes, escaped in messages.
_ESCAPES = {**{c: f"\\x{c:02x}" for c in (*range(32), 127)}, 9: "\\t", 10: "\\n", 13: "\\r",
            **{c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)}}


class NotRegularFileError(OSError):
    """A path names a FIFO, device or socket, which is never read as a file (it could block or never end)."""


def open_regular(path: str | os.PathLike) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without ever blocking; return (file descriptor, its fstat).

    The type is checked before opening (a FIFO or device is never opened) and again on the open file.

    Raises
    ------
    NotRegularFileError
        A FIFO, character or block device or socket; its strerror is e.g. ``not a regular file (FIFO)``.
    IsADirectoryError
        A folder.
    OSError
        From ``os.stat`` / ``os.open`` (missing, symlink loop, name too long, permission...).
    ValueError
        The path holds a NUL byte.
    """
    _check_regular(os.stat(path), path)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        _check_regular(info, path)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _check_regular(info: os.stat_result, path: str | os.PathLike) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", os.fsdecode(path))
    for test, what in _NOT_REGULAR:
        if test(info.st_mode):
            raise NotRegularFileError(errno.EINVAL, f"not a regular file ({what})", os.fsdecode(path))
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFileError(errno.EINVAL, "not a regular file", os.fsdecode(path))


def read_image_bytes(path: str | os.PathLike, *, name: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read a whole image file into memory, boundedly and without blocking.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    name : str, optional
        How to name the file in error messages; defaults to ``path``.
    max_bytes : int
        Largest file read; at most ``max_bytes + 1`` bytes are ever read.

    Returns
    -------
    bytes
        The file's contents, never empty.

    Raises
    ------
    ImageError
        ``not_found`` (missing, a folder, a dangling symlink, a symlink loop, a name too long, a NUL byte in the
        path), ``empty`` (0 bytes), ``too_large`` (over ``max_bytes``), ``unreadable`` (a FIFO, device or socket:
        never opened; permission denied and other OS errors).
    """
    label = one_line(name if name is not None else path_text(path))
    try:
        fd, info = open_regular(path)
    except ValueError:  # embedded NUL byte: the OS cannot be asked about such a name
        raise ImageError("not_found", f"{label}: no such file (the path contains a NUL byte)") from None
    except OSError as exc:
        raise _open_error(exc, path, label) from None
    try:
        if info.st_size > max_bytes:
            raise _too_big(label, info.st_size, max_bytes)
        data = _read_at_most(fd, max_bytes + 1, info.st_size)
    except OSError as exc:
        raise ImageError("unreadable", f"{label}: cannot read file ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew, or its size is not known in advance
        raise _too_big(label, len(data), max_bytes, at_least=True)
    if not data:
        raise ImageError("empty", f"{label}: file is empty (0 bytes)")
    return data


def one_line(text: str) -> str:
    """``text`` with control characters (newline, NUL...) and undecodable file-name bytes escaped."""
    return text.translate(_ESCAPES)


def path_text(path: str | os.PathLike) -> str:
    """A path as text for messages (``repr`` of what is no path)."""
    try:
        return os.fsdecode(path)
    except (TypeError, ValueError):
        return repr(path)


def _open_error(exc: OSError, path: str | os.PathLike, label: str) -> ImageError:
    """The ImageError of a file that could not be opened."""
    if isinstance(exc, NotRegularFileError):
        return ImageError("unreadable", f"{label}: {exc.strerror}")
    if isinstance(exc, IsADirectoryError):
        return ImageError("not_found", f"{label}: is a directory, not an image file")
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return ImageError("not_found", f"{label}: dangling symbolic link (its target does not exist)")
    reasons = {errno.ENOENT: "no such file", errno.ENOTDIR: "no such file (a part of the path is not a folder)",
               errno.ELOOP: "no such file (too many levels of symbolic links: a symlink loop)",
               errno.ENAMETOOLONG: "no such file (file name too long)"}
    if exc.errno in reasons:
        return ImageError("not_found", f"{label}: {reasons[exc.errno]}")
    return ImageError("unreadable", f"{label}: cannot read file ({exc.strerror or exc})")


def _read_at_most(fd: int, limit: int, size_hint: int) -> bytes:
    """Read from ``fd`` until end of file or ``limit`` bytes (a regular file: usually one read and the EOF)."""
    parts, total = [], 0
    while total < limit:
        chunk = os.read(fd, min(limit - total, max(size_hint + 1 - total, _READ_CHUNK_BYTES)))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def _too_big(label: str, size: int, max_bytes: int, *, at_least: bool = False) -> ImageError:
    more = "more than " if at_least else ""
    return ImageError("too_large", f"{label}: file is {more}{size / 1e6:.1f} MB, over the limit of "
                                   f"{max_bytes / 1e6:.1f} MB for an image file")
