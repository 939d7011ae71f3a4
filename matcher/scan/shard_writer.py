"""The driver's side of a sharded scan: result tables in, part files, descriptors and cluster ids out.

``ShardWriter`` receives the cascade's result tables in input order (each with a ``descriptor`` column: the
listing's float16 descriptors as bytes), holds the shard being filled (memory flat in the number of listings),
and for each complete shard records the descriptors in the scan's ``DescriptorLog`` (``history.py``: beside
``OUT_DIR``, as beside a local results file) and writes ``part-NNNNN.parquet`` atomically. Once every shard is
there, ``cluster_shards`` gives near-duplicate listings their ``cluster_id`` (``clusters.py``, as the local scan's
final pass) and rewrites the part files whose ids changed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .clusters import ClusterSettings, find_clusters
from .history import DescriptorLog
from .parquet_results import write_parquet
from .shards import ShardPlan, part_path

DESCRIPTOR = "descriptor"  # the column of the cascade's tables that carries descriptors to the driver


@dataclass
class ShardedScanSummary:
    """Counts of one sharded scan; ``rows`` are the rows written by this run (finished shards are skipped)."""

    out_dir: Path
    listings: int = 0
    shards: int = 0
    shards_skipped: int = 0
    rows: int = 0
    lost: int = 0  # listings whose worker kept dying: ``unreadable`` rows
    seconds: float = 0.0
    verdicts: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    top: list[dict] = field(default_factory=list)
    clustered: Counter = field(default_factory=Counter)  # cluster id -> listings, over the whole scan

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items())) or "none"
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) or "none"
        resumed = f" ({self.shards_skipped} already done)" if self.shards_skipped else ""
        lost = f"; {self.lost} listings killed their worker (unreadable rows)" if self.lost else ""
        lost += (f"; clusters: {len(self.clustered)} groups of near-duplicate photos, "
                 f"{sum(self.clustered.values())} listings" if self.clustered else "")
        shards = self.shards - self.shards_skipped
        return (f"{self.rows} listings in {shards} shard{'' if shards == 1 else 's'}{resumed}, "
                f"{self.seconds:.1f} s ({self.per_second:.1f}/s); verdicts: {verdicts}; status: {statuses}{lost}")



class ShardWriter:
    """Collects result tables (in input order) into shards; writes each complete shard as its part file, after
    its listings' descriptors (the ``descriptor`` column, dropped from the part) are flushed to ``history``."""

    def __init__(self, out_dir: Path, plan: ShardPlan, summary: ShardedScanSummary, keep_top: int,
                 on_shard, total: int, history: DescriptorLog | None):
        self.out_dir, self.plan, self.summary, self.keep_top = out_dir, plan, summary, keep_top
        self.history = history
        self.on_shard, self.total, self.written = on_shard, total, 0
        self.current: int | None = None
        self.tables: list = []
        self.incomplete: dict[int, list] = {}  # shard -> its tables, when rows went missing (a dead worker)

    def add(self, table) -> None:
        shards = table.column("position").to_numpy() // self.plan.shard_size
        starts = np.concatenate([[0], np.flatnonzero(np.diff(shards)) + 1, [len(shards)]])
        for begin, end in zip(starts[:-1], starts[1:]):
            if end > begin:
                self._add_run(int(shards[begin]), table.slice(begin, end - begin))

    def _add_run(self, shard: int, table) -> None:
        if shard != self.current:
            self._flush()
            self.current = shard
        self.tables.append(table)

    def close(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if self.current is None:
            return
        shard, tables = self.current, self.tables
        self.current, self.tables = None, []
        if sum(t.num_rows for t in tables) == self.plan.rows_in(shard):
            self.write(shard, tables)
        else:
            self.incomplete[shard] = tables

    def write(self, shard: int, tables: list) -> None:
        import pyarrow as pa

        table = pa.concat_tables(tables).sort_by("position")
        if self.history is not None:
            for position, vector in zip(table.column("position").to_pylist(), table.column(DESCRIPTOR).to_pylist()):
                self.history.add(position, None if vector is None else
                                 np.frombuffer(vector, np.float16).reshape(self.history.shape))
            self.history.flush()  # before the part file: a finished shard always has its descriptors
        table = table.drop_columns([DESCRIPTOR])
        write_parquet(part_path(self.out_dir, shard), [table], table.schema)
        self._count(table)
        self.written += 1
        if self.on_shard:
            self.on_shard(self.written, self.total)

    def _count(self, table) -> None:
        summary = self.summary
        summary.rows += table.num_rows
        statuses = table.column("status").to_pylist()
        summary.statuses.update(statuses)
        summary.verdicts.update(v for v, s in zip(table.column("verdict").to_pylist(), statuses) if s == "ok")
        suspicion = table.column("suspicion").to_numpy(zero_copy_only=False)
        best = [int(i) for i in np.argsort(-np.nan_to_num(suspicion.astype(float), nan=-1.0))[: self.keep_top]
                if statuses[i] == "ok"]
        summary.top = sorted(summary.top + [table.slice(i, 1).to_pylist()[0] for i in best],
                             key=lambda r: (-r["suspicion"], r["position"]))[: self.keep_top]


def cluster_shards(out_dir: Path, plan: ShardPlan, descriptors: Path,
                   settings: ClusterSettings | None = ClusterSettings()) -> Counter:
    """Fill in every part file's ``cluster_id`` from the scan's stored descriptors (``.npy``; none when
    ``settings`` is None); a part whose ids do not change is left as is, so a resumed pass only rewrites what a
    kill left undone. Returns cluster -> listings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cluster_ids = {} if settings is None else find_clusters(np.load(descriptors, mmap_mode="r"), out_dir, settings)
    for shard in range(plan.shards):
        path = part_path(out_dir, shard)
        table = pq.read_table(path)
        ids = pa.array([cluster_ids.get(p, "") for p in table.column("position").to_pylist()], pa.string())
        if ids.equals(table.column("cluster_id").combine_chunks()):
            continue
        table = table.set_column(table.schema.get_field_index("cluster_id"), "cluster_id", ids)
        write_parquet(path, [table], table.schema)
    return Counter(cluster_ids.values())
