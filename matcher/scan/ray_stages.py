"""The two stages a sharded scan runs on the cluster's workers (``distributed.py`` wires them into Ray Data).

* ``read_input_shards``: a task reading input-shard files (``shards.py``) into rows of paths.
* ``decode_listings``: a task over a batch of input-shard rows -> each listing read, hashed and decoded
  (``inputs.reader.read_listing``, the local scan's reader: same reduction, same errors), pixels as raw RGB bytes.
* ``CascadeStage``: an actor class; each actor opens the index once (``Matcher.open`` of the index folder, which
  must be readable on every node: shared or node-local storage) and turns decoded batches into result rows
  (``rows.result_row``, the local scan's rows) as pyarrow tables. Byte-identical listings are matched once per
  actor, as the local scan matches them once per scan.

Nothing here imports Ray: the functions are plain Python, testable without a cluster.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PIL import Image

from ..cascade.matcher import Matcher
from ..cascade.scoring import MatchResult
from ..errors import ImageError
from ..inputs.reader import read_listing
from .parquet_results import results_schema, rows_to_table
from .rows import audit_fields, result_row
from .shard_writer import DESCRIPTOR
from .shards import listing_of
from .writers import NUMBER_FIELDS, result_columns

MEMO_LIMIT = 10_000  # results an actor remembers by the sha256 of the listing's bytes


def read_input_shards(batch: dict[str, np.ndarray]):
    """``{"file": [input-shard paths]}`` -> their rows (position, shard, listing, path, fields), as one table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.concat_tables([pq.read_table(str(path)) for path in batch["file"]])


def decode_listings(batch: dict[str, np.ndarray]) -> dict[str, list]:
    """Input-shard rows -> the same rows plus digest, width, height, pixels (RGB bytes) and error kind/text."""
    out = {name: list(values) for name, values in batch.items()}
    digests, widths, heights, pixels, kinds, errors = [], [], [], [], [], []
    for listing, path in zip(batch["listing"], batch["path"]):
        digest, image = read_listing(path.decode("utf-8", "surrogateescape"),
                                     listing.decode("utf-8", "surrogateescape"))
        failed = isinstance(image, ImageError)
        digests.append(digest)
        widths.append(0 if failed else image.width)
        heights.append(0 if failed else image.height)
        pixels.append(b"" if failed else image.tobytes())
        kinds.append(image.kind if failed else None)
        errors.append(str(image) if failed else None)
    out.update(digest=digests, width=widths, height=heights, pixels=pixels, error_kind=kinds, error=errors)
    return out


class CascadeStage:
    """Decoded rows -> result rows (a pyarrow Table of ``results_schema``, plus the listings' descriptors as
    float16 bytes in a ``descriptor`` column, for the driver's descriptor log); one index per actor.

    index_dir : the index folder, as every worker node sees it
    columns : the manifest's extra columns (the plan's), so every shard has the local scan's columns
    """

    def __init__(self, index_dir: str, columns: tuple[str, ...], top_k: int, device: str = "cpu",
                 threads: int | None = None):
        self.matcher = Matcher.open(index_dir, device=device, threads=threads)
        self.top_k = top_k
        self.schema = results_schema(result_columns(columns), NUMBER_FIELDS)
        self.memo: OrderedDict[str, MatchResult] = OrderedDict()
        self.audit = audit_fields(self.matcher.version)

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        fresh: dict[str, Image.Image] = {}
        for digest, width, height, pixels, kind in zip(batch["digest"], batch["width"], batch["height"],
                                                       batch["pixels"], batch["error_kind"]):
            if not _failed(kind) and digest not in self.memo and digest not in fresh:
                fresh[digest] = Image.frombytes("RGB", (int(width), int(height)), pixels)
        for digest, result in zip(fresh, self.matcher.match_decoded(list(fresh.values()))):
            self.memo[digest] = result
        rows, descriptors = [], []
        for i, position in enumerate(batch["position"]):
            listing = listing_of(position, batch["listing"][i], batch["path"][i], batch["fields"][i])
            kind = batch["error_kind"][i]
            result = (MatchResult.failed(ImageError(kind, batch["error"][i])) if _failed(kind)
                      else self.memo[batch["digest"][i]])
            rows.append(result_row(listing, result, self.top_k, self.matcher.typical_prices, self.audit))
            descriptors.append(None if result.descriptor is None else
                               np.asarray(result.descriptor, np.float16).tobytes())
        while len(self.memo) > MEMO_LIMIT:
            self.memo.popitem(last=False)
        return rows_to_table(rows, self.schema).append_column(DESCRIPTOR, pa.array(descriptors, pa.binary()))


def _failed(error_kind: object) -> bool:
    """Whether a decoded row failed: its error kind is text (a column of no errors may reach a batch as NaN)."""
    return isinstance(error_kind, str) and bool(error_kind)
