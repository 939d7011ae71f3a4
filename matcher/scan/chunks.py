"""Split a stream into lists of a fixed size without reading ahead (batches of listings, rows, shards)."""
from __future__ import annotations

import itertools
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` consecutive items (the last one shorter); holds one list at a time."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
