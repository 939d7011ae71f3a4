"""Batch scan: listings -> (read, decode) -> match -> one result row per input, flushed as it goes.

``reader -> mapper -> writer``: listings stream from a folder or manifest, are read, hashed and decoded in
batches by worker processes (``inputs.reader``) while the main process matches the batch before with a ``Matcher``;
a ``ResultWriter`` writes the rows in input order and flushes them per batch. A bad image is a row with its
status and reason. Byte-identical listings are matched once per scan (and decoded once per decoding process);
each still gets its own row. With ``resume=True`` a killed scan (even ``kill -9``) continues into the same
results file without redoing finished listings. ``.parquet`` results go through a JSONL spool (``staging.py``).
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
import time
from typing import Callable

from PIL import Image

from ..cascade.matcher import Matcher
from ..cascade.scoring import MatchResult
from ..errors import ImageError
from ..inputs.brands import check_listing_prices
from ..inputs.listings import Listing, iter_listings, manifest_columns
from ..inputs.walk import WalkReport
from ..inputs.reader import DecodePool, read_listing
from .clusters import ClusterSettings, cluster_scan
from .history import open_history
from .outputs import check_output
from .ranking import rank_results
from .chunks import chunked
from .rows import audit_fields, result_row
from .staging import finish_results, staged_results
from .writers import open_writer


FLOOD_SHARE = 0.20  # one reference behind more than this share of the flagged listings is flooding
FLOOD_MIN_LISTINGS = 100  # ... in a scan of at least this many listings


@dataclass
class ScanSummary:
    """Counts of one scan. ``seconds`` is wall time; ``skipped`` counts listings already done (resume)."""

    results: Path
    total: int = 0
    skipped: int = 0
    seconds: float = 0.0
    verdicts: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    checks: Counter = field(default_factory=Counter)  # MatchResult.checks of the readable listings
    top: list[dict] = field(default_factory=list)
    kept: int | None = None  # rows left in the results file after --min-suspicion (None: not ranked)
    left_out: WalkReport = field(default_factory=WalkReport)  # what a folder walk did not take as a listing
    flagged: Counter = field(default_factory=Counter)  # reference -> listings flagged (verdict != no_match) with it
    sellers: Counter = field(default_factory=Counter)  # seller (manifest column) -> its flagged listings
    clustered: Counter = field(default_factory=Counter)  # cluster id -> listings (rows written this run)
    cluster_seconds: float = 0.0  # the final pass's clustering (included in ``seconds``)

    @property
    def per_second(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0

    def count(self, row: dict) -> None:
        """Count a written row's flagged reference and seller (``notes``)."""
        if row.get("status") == "ok" and row.get("verdict") not in ("no_match", ""):
            self.flagged[row.get("reference") or ""] += 1
            if row.get("seller"):
                self.sellers[str(row["seller"])] += 1

    def notes(self, *, sellers: int = 5) -> list[str]:
        """Lines the CLI prints after ``line``: clusters, the sellers with the most suspects, and a warning when
        one reference accounts for more than FLOOD_SHARE of the flagged listings of a scan of at least
        FLOOD_MIN_LISTINGS (a generic photo flooding matches: ``matcher index disable`` quarantines it)."""
        out = []
        if self.clustered:
            out.append(f"clusters: {len(self.clustered)} groups of near-duplicate photos, "
                       f"{sum(self.clustered.values())} listings ({self.cluster_seconds:.1f} s)")
        if self.sellers:
            out.append("sellers with the most suspects: "
                       + ", ".join(f"{name} {count}" for name, count in self.sellers.most_common(sellers)))
        flagged = sum(self.flagged.values())
        if self.total >= FLOOD_MIN_LISTINGS and flagged:
            reference, count = self.flagged.most_common(1)[0]
            if count > FLOOD_SHARE * flagged:
                out.append(f"warning: reference {reference} accounts for {count} of the {flagged} flagged listings "
                           f"({count / flagged:.0%}); if it is a generic photo, quarantine it with "
                           f"`matcher index disable INDEX {reference}`")
        return out

    def line(self) -> str:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items()))
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        resumed = f" ({self.skipped} already done)" if self.skipped else ""
        dropped = self.total + self.skipped - self.kept if self.kept is not None else 0
        filtered = f"; {dropped} below --min-suspicion left out" if dropped > 0 else ""
        stages = (f"; checked in full {self.checks['full']}, dismissed {self.checks['dismissed']}, "
                  f"global stage only {self.checks['global']}" if self.checks else "")
        return (f"{self.total} listings{resumed} in {self.seconds:.1f} s ({self.per_second:.1f}/s); "
                f"verdicts: {verdicts or 'none'}; status: {statuses or 'none'}{stages}{filtered}"
                + (f"; {self.left_out.line()}" if self.left_out else ""))


def scan(source: str | Path, matcher: Matcher, results_path: str | Path, *, top_k: int = 5,
         resume: bool = False, batch_size: int = 32, keep_top: int = 10,
         on_batch: Callable[[int], None] | None = None, workers: int | None = None,
         rank: bool = True, min_suspicion: float = 0.0,
         clusters: ClusterSettings | None = ClusterSettings()) -> ScanSummary:
    """Scan every listing of ``source`` (folder or manifest) and write one row per listing to ``results_path``.

    Rows are written in input order as the scan goes; when every listing has its row and ``rank`` is set, the
    file is rewritten most suspicious first (``rank_results`` of ``ranking.py``), dropping decoded rows whose suspicion
    is below ``min_suspicion`` (failed rows always stay). A manifest ``price`` that is not a price is refused
    before any work, with its file:line:column. A ``results_path`` that is the listings manifest (or folder), or
    lies in the matcher's index folder, is refused before anything is written (``OutputPathError``, exit code 2).

    on_batch : called with the number of listings just written (for progress bars)
    keep_top : how many of the most suspicious ok rows the summary keeps for printing
    workers : decode processes (None: one per CPU, at most 8, started once waiting for decoding takes >= 10% of
              the matching time; N: N processes from the second batch on; 0: decode in a thread of this process,
              one batch ahead)
    clusters : how the final pass finds near-duplicate listings (``clusters.py``; None: no cluster ids)
    """
    results_path = Path(results_path)
    check_output(results_path, "results",
                 inputs=[(f"listings {'folder' if Path(source).is_dir() else 'manifest'}", source)],
                 folders=[("index folder", getattr(matcher, "index_dir", None))])
    columns = manifest_columns(source)
    check_listing_prices(source, columns)
    typical_prices = matcher.typical_prices
    summary = ScanSummary(results=results_path)
    started = time.perf_counter()
    history = open_history(results_path, matcher, resume=resume)  # descriptors beside the results (history.py)
    audit = audit_fields(matcher.version) if history else None
    final_path, results_path = results_path, staged_results(results_path, resume=resume)
    memo: OrderedDict[str, MatchResult] = OrderedDict()  # identical bytes -> result, bounded
    with open_writer(results_path, extra_fields=columns, resume=resume) as writer, \
            DecodePool(workers) as reader:
        done = writer.finished_positions
        batches = reader.read(chunked(iter_listings(source, skipped=summary.left_out), batch_size), lambda item: item.position not in done)
        for batch, decoded in batches:
            summary.skipped += len(batch) - len(decoded)
            rows: list[tuple[Listing, str | None, Image.Image | ImageError]] = []
            fresh: dict[str, Image.Image] = {}
            for item, digest, image in decoded:
                if image is None and digest not in memo and digest not in fresh:
                    digest, image = read_listing(item.path, item.listing)  # its twin's result was forgotten
                if isinstance(image, Image.Image) and digest not in memo:
                    fresh.setdefault(digest, image)
                rows.append((item, digest, image))
            for digest, result in zip(fresh, matcher.match_decoded(list(fresh.values()))):
                memo[digest] = result
            for item, digest, image in rows:
                result = MatchResult.failed(image) if isinstance(image, ImageError) else memo[digest]
                row = result_row(item, result, top_k, typical_prices, audit)
                if history:
                    history.add(item.position, result.descriptor)
                writer.write(row)
                summary.count(row)
                summary.total += 1
                summary.statuses[result.status] += 1
                if result.ok:
                    summary.verdicts[result.verdict] += 1
                    summary.checks[result.checks] += 1
                    summary.top.append(row)
            summary.top = sorted(summary.top, key=lambda r: (-r["suspicion"], r["position"]))[:keep_top]
            while len(memo) > 10_000:
                memo.popitem(last=False)
            if history:
                history.flush()  # before the rows: a finished row always has its descriptor
            writer.flush()
            if on_batch:
                on_batch(len(batch))
    clustering = time.perf_counter()
    cluster_ids = cluster_scan(history, results_path, clusters)
    summary.clustered.update(cluster_ids.values())
    summary.cluster_seconds = time.perf_counter() - clustering
    if rank or cluster_ids:  # one pass fills in cluster ids (and ranks)
        kept = rank_results(results_path, min_suspicion=min_suspicion if rank else 0.0, cluster_ids=cluster_ids,
                            reorder=rank)
        summary.kept = kept if rank else None
    finish_results(results_path, final_path, writer.columns)
    summary.seconds = time.perf_counter() - started
    return summary
