"""The batch scan on Ray Data: the same rows as the local scan, as Parquet shards, resumable shard by shard.

``input shards -> decode (tasks) -> cascade (actor pool, one index per actor) -> driver -> part files``

The driver plans the scan (``shards.py``: the source streamed once into small Parquet files of paths, every
check of the local scan made before any cluster work), then Ray Data reads the pending input shards, decodes
listings in tasks (``ray_stages.decode_listings``) and matches them in a pool of ``CascadeStage`` actors. Blocks
come back in input order; the driver holds at most the shard being filled (memory flat in the number of
listings) and writes each finished shard as ``part-NNNNN.parquet``, atomically. A listing whose worker dies
(a segfault, out of memory) is retried by Ray; a block still failing is dropped, and its listings are re-run one
per block: the one that keeps killing its worker becomes an ``unreadable`` row, the others get their results.
Ray is imported only here, lazily: ``pip install matcher[ray]``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path
import time
from typing import Callable, Iterator
import warnings

from ..cascade.scoring import MatchResult
from ..errors import ImageError, MatcherError
from ..index import IndexVersion, published_manifest
from ..inputs import check_listing_prices, manifest_columns
from .outputs import check_output
from .clusters import ClusterSettings
from .history import DescriptorLog, history_paths
from .parquet_results import results_schema, rows_to_table
from .ray_stages import CascadeStage, decode_listings, read_input_shards
from .rows import result_row
from .shard_writer import DESCRIPTOR, ShardedScanSummary, ShardWriter, cluster_shards
from .shards import ShardPlan, finished_shards, listing_of, mark_success, part_path, plan_scan, work_path
from .writers import NUMBER_FIELDS, result_columns

AUDIT_COLUMNS = ("index_version", "model", "threshold")  # what judged a row (``rows.audit_fields``)
DEFAULT_SHARD_SIZE = 10_000  # listings per part file: a few MB of results, minutes of work for one actor
ACTOR_RETRIES = 2  # times Ray re-runs a batch whose actor died, before the block is given up (and re-run alone)
RAY_MISSING = "the Ray engine needs Ray: pip install 'matcher[ray]'"


def scan_on_ray(source: str | os.PathLike, index_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                address: str | None = None, shard_size: int = DEFAULT_SHARD_SIZE, resume: bool = False,
                top_k: int = 5, device: str = "cpu", threads: int | None = None, actors: int | None = None,
                cpus_per_actor: float = 1.0, batch_size: int = 32, keep_top: int = 10,
                on_shard: Callable[[int, int], None] | None = None,
                stage: type = CascadeStage, clusters: ClusterSettings | None = ClusterSettings()) -> ShardedScanSummary:
    """Scan every listing of ``source`` (folder or manifest) on Ray; one row per listing in ``out_dir``'s shards.

    address : an existing cluster (``ray.init(address=...)``); None: use this process's Ray if it has one, else
        start a local instance for the scan and stop it after
    actors : cascade actors (None: one per GPU with ``device='cuda'``, else 3/4 of the cluster's CPUs divided by
        ``cpus_per_actor``, at least one); each holds the index and the CNN once
    threads : CNN threads per actor (None: the cluster's CPUs divided among the actors, at least
        ``cpus_per_actor`` rounded up)
    on_shard : called with (shards written, shards to write) after each part file
    stage : the actor class (``CascadeStage`` or a subclass, e.g. one that logs or pre-checks each batch)
    clusters : how the final pass finds near-duplicate listings (``clusters.py``; None: no cluster ids)

    Raises (before any cluster work): ``IndexNotFoundError``/``IndexCorruptError`` (index), ``ListingsError``
    (source), ``OutputPathError`` (``out_dir`` is an input or inside the index), ``MatcherError`` (Ray missing,
    ``out_dir`` holds other files, or a resumed plan differs).
    """
    source, out_dir, index_dir = Path(source), Path(out_dir), Path(index_dir).resolve()
    if shard_size < 1 or batch_size < 1:
        raise MatcherError(f"shard size and batch size must be at least 1 (got {shard_size}, {batch_size})")
    check_output(out_dir, "results", inputs=[("listings source", source)], folders=[("index folder", index_dir)])
    version = published_manifest(index_dir)[0].name  # a missing or foreign index: one line, before any work
    columns = manifest_columns(source)
    check_listing_prices(source, columns)
    ray = _import_ray()
    started = time.perf_counter()
    plan = plan_scan(source, out_dir, index_version=version, top_k=top_k, shard_size=shard_size, columns=columns,
                     resume=resume)
    done = finished_shards(out_dir, plan)
    summary = ShardedScanSummary(out_dir=out_dir, listings=plan.listings, shards=plan.shards,
                                 shards_skipped=len(done))
    pending = [k for k in range(plan.shards) if k not in done]
    descriptors, _ = history_paths(out_dir)
    history = None if not pending and descriptors.is_file() else _open_history(index_dir, out_dir, plan, resume)
    if pending:
        with _ray_session(ray, address):
            options, threads = _actor_options(ray, device, actors, cpus_per_actor, threads)
            actor = (stage, dict(index_dir=str(index_dir), columns=plan.columns, top_k=top_k, device=device,
                                 threads=threads))
            writer = ShardWriter(out_dir, plan, summary, keep_top, on_shard, len(pending), history)
            for table in _run(ray, [work_path(out_dir, k) for k in pending], actor, options, batch_size):
                writer.add(table)
            writer.close()
            for shard in pending:  # a shard none of whose blocks came back is incomplete too
                if not part_path(out_dir, shard).is_file():
                    writer.incomplete.setdefault(shard, [])
            if writer.incomplete:
                _repair(ray, out_dir, plan, writer, actor, options)
    missing = [k for k in range(plan.shards) if not part_path(out_dir, k).is_file()]
    if missing:
        raise MatcherError(f"{out_dir}: {len(missing)} shards have no results (first: {part_path(out_dir, missing[0]).name}); "
                           "run again with --resume")
    if history is not None:
        history.finish()
    summary.clustered = cluster_shards(out_dir, plan, descriptors, clusters)
    summary.seconds = time.perf_counter() - started
    mark_success(out_dir, plan, summary.rows, summary.seconds)
    return summary


def _run(ray, inputs: list[Path], actor: tuple[type, dict], options: dict, batch_size: int,
         task_cpus: float = 1.0) -> Iterator:
    """Result tables of the listings in ``inputs`` (input-shard files), in input order; ``actor``: the stage
    class and its constructor's arguments; ``task_cpus``: CPUs Ray reserves per reading and decoding task."""
    from ray.data import DataContext

    context, logger = DataContext.get_current(), logging.getLogger("ray.data")
    saved = (context.execution_options.preserve_order, context.max_errored_blocks, context.enable_progress_bars,
             logger.level)
    context.execution_options.preserve_order = True  # the driver fills one shard at a time
    context.max_errored_blocks = -1  # a block whose worker keeps dying is dropped; its listings are re-run alone
    context.enable_progress_bars = False  # the CLI prints a line per shard written
    logger.setLevel(logging.ERROR)  # Ray Data's execution plans and notices are not the user's business
    try:
        # one item per input-shard file, read in a task (not ``read_parquet``: its path listing needs fsspec's
        # optional HTTP support, and the driver already knows every file)
        data = ray.data.from_items([{"file": str(p)} for p in inputs], override_num_blocks=len(inputs))
        data = data.map_batches(read_input_shards, batch_size=1, batch_format="numpy", num_cpus=task_cpus)
        data = data.map_batches(decode_listings, batch_size=batch_size, batch_format="numpy", num_cpus=task_cpus)
        with warnings.catch_warnings():  # Ray 2.60 deprecates ray_remote_args_fn with no other way to bound
            warnings.simplefilter("ignore", DeprecationWarning)  # actor retries yet (pyproject: ray < 2.64)
            data = data.map_batches(actor[0], fn_constructor_kwargs=actor[1], batch_size=batch_size,
                                    batch_format="numpy", **options)
        yield from data.iter_batches(batch_format="pyarrow", batch_size=None)
    finally:
        (context.execution_options.preserve_order, context.max_errored_blocks,
         context.enable_progress_bars) = saved[:3]
        logger.setLevel(saved[3])


def _repair(ray, out_dir: Path, plan: ShardPlan, writer: ShardWriter, actor: tuple[type, dict],
            options: dict) -> None:
    """Re-run, one listing per block, the listings of shards that lost rows; a listing that still kills its
    worker gets an ``unreadable`` row. Then write those shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = results_schema(result_columns(plan.columns), NUMBER_FIELDS)
    for shard, tables in sorted(writer.incomplete.items()):
        have = {p for t in tables for p in t.column("position").to_pylist()}
        inputs = pq.read_table(work_path(out_dir, shard))
        lost = inputs.filter(pa.array([p not in have for p in inputs.column("position").to_pylist()]))
        single = out_dir / "_work" / f"repair-{shard:05d}"
        single.mkdir(exist_ok=True)
        for i in range(lost.num_rows):
            pq.write_table(lost.slice(i, 1), single / f"{i:06d}.parquet")
        # one task in flight per actor, so a death kills no other listing; the pool may shrink to one actor and the
        # tasks reserve no CPU: an actor of the first pass that was restarting when it ended can linger (Ray),
        # holding its CPU, and these few listings must not wait for it
        alone = dict(options, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=options["compute"].max_size,
                                                                max_tasks_in_flight_per_actor=1))
        again = list(_run(ray, sorted(single.iterdir()), actor, alone, 1, task_cpus=0))
        have |= {p for t in again for p in t.column("position").to_pylist()}
        dead = [row for row in lost.to_pylist() if row["position"] not in have]
        if dead and len(dead) > max(10, lost.num_rows // 2):
            raise MatcherError(f"{out_dir}: workers died on {len(dead)} of {lost.num_rows} listings of shard {shard} "
                               "even one at a time; see the Ray logs (is the index readable on every node?)")
        writer.summary.lost += len(dead)
        judged = tables + again
        audit = judged[0].slice(0, 1).select(list(AUDIT_COLUMNS)).to_pylist()[0] if judged else {}
        dead_rows = rows_to_table([_dead_row(row, plan.top_k, audit) for row in dead], schema)
        writer.write(shard, judged + [dead_rows.append_column(DESCRIPTOR, pa.nulls(len(dead), pa.binary()))])


def _dead_row(row: dict, top_k: int, audit: dict) -> dict:
    """The row of a listing whose worker died on it at every try: an ``unreadable`` row, as the local scan's.

    audit : the audit fields of the shard's other rows (the index version that judged them), if any
    """
    listing = listing_of(row["position"], row["listing"], row["path"], row["fields"])
    error = ImageError("unreadable", f"{listing.listing}: the worker checking it died {ACTOR_RETRIES + 1} times "
                                     "(a crash or out of memory)")
    return result_row(listing, MatchResult.failed(error), top_k, {}, audit)


def _open_history(index_dir: Path, out_dir: Path, plan: ShardPlan, resume: bool) -> DescriptorLog:
    """The scan's descriptor log (beside ``out_dir``), for the index version of the plan."""
    version = IndexVersion.open(index_dir)
    try:
        if version.folder.name != plan.index_version:
            raise MatcherError(f"{index_dir}: its published version changed to {version.folder.name} during the scan "
                               f"planned with {plan.index_version}; write to a new --out folder")
        return DescriptorLog(out_dir, version, version.manifest.get("fingerprint", {}), resume=resume)
    finally:
        version.close()


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] extra
    except ImportError:
        raise MatcherError(RAY_MISSING) from None
    return ray


@contextlib.contextmanager
def _ray_session(ray, address: str | None):
    """Ray for the scan: ``address``'s cluster, this process's Ray, or a local instance stopped afterwards."""
    if ray.is_initialized() and address is None:
        yield
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise MatcherError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _actor_options(ray, device: str, actors: int | None, cpus_per_actor: float,
                   threads: int | None) -> tuple[dict, int]:
    """``map_batches`` options of the cascade actor pool, and the CNN threads of each actor (see
    ``scan_on_ray``'s ``actors`` and ``threads``)."""
    resources = ray.cluster_resources()
    cpus, gpu = resources.get("CPU", 1), device.startswith("cuda")
    if actors is None:
        actors = int(resources.get("GPU", 0)) if gpu else int(cpus * 0.75 // cpus_per_actor)
    actors = max(1, actors)
    options = dict(compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor,
                   num_gpus=1 if gpu else 0, ray_remote_args_fn=_retries)
    # the CPUs Ray does not reserve for actors run decode tasks, which leave them idle most of the time: the
    # CNN threads share all the CPUs among the actors (figures: docs/benchmarks.md, "Scans on Ray")
    return options, threads or max(1, math.ceil(cpus_per_actor), int(cpus // actors))


def _retries() -> dict:
    """Actor options over Ray Data's defaults: a dead actor is restarted, its batch retried ACTOR_RETRIES times
    (the default, forever, would never get past a listing that kills every actor)."""
    return {"max_restarts": -1, "max_task_retries": ACTOR_RETRIES}
