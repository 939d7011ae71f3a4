"""The output folder of a sharded scan: its plan, its input shards, its finished result shards.

A sharded scan (``distributed.py``) splits the listings, in source order, into shards of ``shard_size``: shard k
holds positions ``[k * shard_size, (k + 1) * shard_size)``. Before any cluster work, the driver streams the source
once (the same readers and checks as the local scan, so positions and errors are the same) into
``OUT_DIR/_work/listings-NNNNN.parquet``, one small file of paths per shard, which is what the cluster reads:
never the listing folder itself, never one planning call per image. ``OUT_DIR/_scan.json``, written last, records
the plan (source, index version, top-k, shard size, listings, columns).

A shard is finished when ``OUT_DIR/part-NNNNN.parquet`` exists: it is written whole and renamed into place, so a
scan killed at any moment leaves finished shards and nothing half-written under that name. ``--resume`` reads
the plan, refuses one made for another source, index version, top-k or shard size, and redoes only the shards
with no part file. ``_SUCCESS`` (JSON: listings, shards, rows, seconds) is written when every shard is there.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import shutil
import types
from typing import Sequence

from ..errors import MatcherError
from .chunks import chunked
from ..inputs import Listing, iter_listings

PLAN = "_scan.json"
SUCCESS = "_SUCCESS"
WORK = "_work"


@dataclass(frozen=True)
class ShardPlan:
    """What a sharded scan does; stored in ``_scan.json`` so a resumed scan does the same."""

    source: str  # the listings folder or manifest, resolved
    index_version: str  # the index version folder the scan matches against
    top_k: int
    shard_size: int
    listings: int
    columns: tuple[str, ...]  # the manifest's extra columns, carried into the rows

    @property
    def shards(self) -> int:
        return -(-self.listings // self.shard_size)

    def rows_in(self, shard: int) -> int:
        """How many listings shard ``shard`` holds (the last one may hold fewer)."""
        return min(self.shard_size, self.listings - shard * self.shard_size)


def part_path(out_dir: Path, shard: int) -> Path:
    return out_dir / f"part-{shard:05d}.parquet"


def work_path(out_dir: Path, shard: int) -> Path:
    return out_dir / WORK / f"listings-{shard:05d}.parquet"


def finished_shards(out_dir: Path, plan: ShardPlan) -> set[int]:
    """The shards whose part file is in place."""
    return {k for k in range(plan.shards) if part_path(out_dir, k).is_file()}


def plan_scan(source: str | os.PathLike, out_dir: Path, *, index_version: str, top_k: int, shard_size: int,
              columns: Sequence[str], resume: bool) -> ShardPlan:
    """The plan of a scan into ``out_dir``: the stored one (``resume`` and a plan in place), else a new one
    written with its input shards (a fresh start deletes the previous scan's files there).

    Raises
    ------
    MatcherError
        ``out_dir`` holds files that are not a sharded scan's, or (resume) its plan was made for another scan.
    ListingsError
        A bad manifest line (streaming the source checks every line, before any cluster work).
    """
    source = str(Path(source).resolve())
    wanted = dict(source=source, index_version=index_version, top_k=top_k, shard_size=shard_size)
    stored = _read_plan(out_dir) if resume else None
    if stored is not None:
        different = [f"{key} {getattr(stored, key)!r} (now {value!r})" for key, value in wanted.items()
                     if getattr(stored, key) != value]
        if different:
            raise MatcherError(f"{out_dir}: cannot resume: that scan was made with another "
                               f"{'; '.join(different)}; write to a new --out folder or drop --resume")
        return stored
    _clear(out_dir)
    created = not out_dir.exists()
    (out_dir / WORK).mkdir(parents=True)
    listings = 0
    try:
        for shard, chunk in enumerate(chunked(iter_listings(source), shard_size)):
            _write_work_shard(work_path(out_dir, shard), chunk, shard)
            listings += len(chunk)
    except BaseException:  # a bad manifest line (or Ctrl-C): leave nothing behind
        shutil.rmtree(out_dir if created else out_dir / WORK, ignore_errors=True)
        raise
    plan = ShardPlan(**wanted, listings=listings, columns=tuple(columns))
    _write_json(out_dir / PLAN, asdict(plan))
    return plan


def mark_success(out_dir: Path, plan: ShardPlan, rows: int, seconds: float) -> None:
    """Write ``_SUCCESS`` once every shard's part file is in place."""
    _write_json(out_dir / SUCCESS, {"listings": plan.listings, "shards": plan.shards, "rows": rows,
                                    "seconds": round(seconds, 3), "index_version": plan.index_version})


def listing_columns(listings: Sequence[Listing], shard: int) -> dict[str, list]:
    """The columns of an input shard: position, shard, listing and path (bytes: a file name need not be UTF-8),
    fields (JSON text)."""
    return {"position": [item.position for item in listings], "shard": [shard] * len(listings),
            "listing": [_bytes(item.listing) for item in listings],
            "path": [_bytes(str(item.path)) for item in listings],
            "fields": [json.dumps(dict(item.fields)) for item in listings]}


def listing_of(position: int, listing: bytes, path: bytes, fields: str) -> Listing:
    """The ``Listing`` an input shard's row stands for (the inverse of ``listing_columns``)."""
    return Listing(listing.decode("utf-8", "surrogateescape"), Path(path.decode("utf-8", "surrogateescape")),
                   types.MappingProxyType(json.loads(fields)), int(position))


# --- helpers ---------------------------------------------------------------


def _write_work_shard(path: Path, listings: Sequence[Listing], shard: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("position", pa.int64()), ("shard", pa.int64()), ("listing", pa.binary()),
                        ("path", pa.binary()), ("fields", pa.string())])
    pq.write_table(pa.Table.from_pydict(listing_columns(listings, shard), schema=schema), path)


def _read_plan(out_dir: Path) -> ShardPlan | None:
    try:
        data = json.loads((out_dir / PLAN).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise MatcherError(f"{out_dir / PLAN}: unreadable scan plan ({exc}); write to a new --out folder") from None
    plan = ShardPlan(**{**data, "columns": tuple(data["columns"])})
    missing = [k for k in range(plan.shards) if not part_path(out_dir, k).is_file()
               and not work_path(out_dir, k).is_file()]
    if missing:
        raise MatcherError(f"{out_dir}: cannot resume: input shard {work_path(out_dir, missing[0]).name} is gone; "
                           "drop --resume to start again")
    return plan


def _clear(out_dir: Path) -> None:
    """Delete a previous sharded scan's files; refuse a folder holding anything else."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise MatcherError(f"{out_dir}: --out must be a folder for --engine ray (it is a file)")
    ours = [p for p in out_dir.iterdir() if p.name in (PLAN, SUCCESS, WORK) or p.name.startswith(("part-", ".part-"))]
    others = sorted(p.name for p in out_dir.iterdir() if p not in ours)
    if others:
        raise MatcherError(f"{out_dir}: holds files that are not a sharded scan's ({', '.join(others[:3])}); "
                           "choose a new or empty --out folder")
    for path in ours:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _write_json(path: Path, data: dict) -> None:
    temp = path.with_name(f".{path.name}.writing")
    temp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(temp, path)



def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
