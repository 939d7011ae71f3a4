"""Strict CSV for manifests: ``csv.reader(strict=True)`` whose errors name the culprit's line and column.

Python's lenient reader lets an unterminated quote swallow the rest of the file into one field (two listings
become one, silently); strict, it fails at the end of the file, far from the cause. ``csv_rows`` turns such an
error into a ``ListingsError`` at the opening quote's ``file:line:column`` (or at the text after a closing quote).
"""
from __future__ import annotations

import csv
import pathlib
from typing import Iterator

from matcher.errors import ListingsError


class Feed:
    """A manifest's lines for ``csv.reader``, keeping those of the record being read, to place its errors."""

    def __init__(self, lines: Iterator[str]):
        self.lines, self.count, self.record, self.first = lines, 0, [], 1

    def __iter__(self) -> "Feed":
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.count += 1
        self.record.append(line)
        return line

    def next_record(self) -> None:
        self.record, self.first = [], self.count + 1


def strict_reader(lines: Iterator[str]) -> tuple[Feed, Iterator[list[str]]]:
    """A strict ``csv.reader`` over ``lines`` (end of file inside quotes or text after a closing quote is an
    error) and the feed that places its errors."""
    feed = Feed(lines)
    return feed, csv.reader(feed, strict=True)


def csv_rows(src: pathlib.Path, feed: Feed, reader) -> Iterator[list[str]]:
    """Yield a csv.reader's rows, turning csv.Error into a ListingsError at the culprit's line and column."""
    while True:
        feed.next_record()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            place = quote_problem(feed.record)
            if place is None:
                raise ListingsError(f"{src}:{feed.count}:1: bad CSV: {exc}") from None
            offset, column, problem = place
            raise ListingsError(f"{src}:{feed.first + offset}:{column}: bad CSV: {problem} ({exc})") from None
        yield row


def quote_problem(lines: list[str]) -> tuple[int, int, str] | None:
    """Where the quoting of a CSV record breaks: (line offset in ``lines``, 1-based column, what), or None.

    Either an opening quote never closed (the field would run on to the end of the file), or text right
    after a closing quote.
    """
    quoted = closed = False
    start, opened = True, (0, 1)
    for offset, line in enumerate(lines):
        i = 0
        while i < len(line):
            char = line[i]
            if quoted:
                if char == '"' and line.startswith('"', i + 1):
                    i += 1  # "" inside quotes
                elif char == '"':
                    quoted, closed = False, True
            elif closed:
                if char not in ",\r\n":
                    return offset, i + 1, 'text after the closing quote of a field (inside quotes write a quote as "")'
                closed, start = False, char == ","
            elif char == '"' and start:
                quoted, start, opened = True, False, (offset, i + 1)
            else:
                start = char == ","
            i += 1
        if not quoted:
            start, closed = True, False
    if quoted:
        return (*opened, "this quote opens a field that is never closed")
    return None
