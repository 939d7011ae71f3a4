"""Domain exceptions.

The library raises these; the CLI turns them into a one-line message and an exit code.
Every error names the file (or index) it is about and says what is wrong with it.
"""
from __future__ import annotations


class MatcherError(Exception):
    """Base class of every error the library raises on purpose."""

    exit_code = 1


class ImageError(MatcherError):
    """An input image could not be turned into pixels.

    ``kind`` is a short machine-readable status used in scan results:
    ``not_found``, ``empty``, ``not_an_image``, ``unsupported_format``, ``too_large``, ``unreadable``.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class CatalogError(MatcherError):
    """A catalog folder is missing, empty, or laid out wrongly."""

    exit_code = 2


class IndexNotFoundError(MatcherError):
    """No index exists at the given path."""

    exit_code = 3


class IndexCorruptError(MatcherError):
    """An index folder exists but its files are missing, unreadable or do not match the manifest."""

    exit_code = 3


class IndexMismatchError(MatcherError):
    """An index was built with another model, preprocessing or format than this code uses."""

    exit_code = 4


class ListingsError(MatcherError):
    """A listings folder or manifest cannot be read (missing file, bad column, bad line)."""

    exit_code = 2


class FeedbackError(MatcherError):
    """A decisions file (``matcher index feedback``) or the results file it names cannot be used: a bad line, an
    unknown listing, brand or label, a results file of another index. Says ``file:line``; nothing is published."""

    exit_code = 2
