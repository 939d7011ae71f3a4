"""Re-scan of history: re-check a past scan's listings against a newer index version (after ``index add``)
without running the CNN again for the listings that cannot match anything new.

Every listing of the old results file takes one of three paths:

* **carried**: the new version differs from the scanned one only by added references (same whitening, scorer
  and background; no reference gone), and its stored descriptors (``history.py``) show that none of them can
  change what the cascade collects for it (``reach.py``, with a float16 margin ``similarity_margin``): for a
  listing the gate stops (by ``gate_margin``), its global candidates and window similarity; for one it may pass
  (a format-2 history of a scan with the same cascade settings), also every window, every stored region crop,
  its likeness and its candidates' shared keypoints. Its row is kept as it was: a fresh scan would collect the
  same evidence.
* **rescored**: the gate stops it, but new references reach its candidates (or the index changed otherwise):
  the global stage is redone from the stored float16 descriptors (``cascade.global_stage``) and scored. Its
  brand score lies at least ``score_margin`` from the operating threshold, so the verdict is the fresh scan's.
* **rechecked**: the gate may pass it and something new may reach it, or a stored decision would be too close
  to call, or it has no stored descriptor: its image is read again and matched in full, as a scan does.

Rows that failed to decode stay as they were. Cluster ids are carried over (they depend on the images only).
The new results file gets its own stored descriptors, so re-scans chain. Descriptors made by another model are
refused in one line; an index whose whitening differs (rebuilt), or descriptors of format 1 (no crops, no raw
descriptor: scans before 2026-12-07), leave nothing to reuse: every listing is rechecked.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
import os
from pathlib import Path
import time
from typing import Iterator

import numpy as np

from ..cascade import Matcher, gate_margin, global_stage, score_with_feedback
from ..cascade.descriptors import WINDOW_ROWS
from ..errors import IndexMismatchError, MatcherError
from ..index import model_name
from ..inputs import Listing
from ..inputs.reader import read_listing
from .history import FORMAT, DescriptorLog, read_history, reference_ids, version_record
from .outputs import check_output
from .ranking import rank_results
from .reach import Reach
from .rows import audit_fields, result_row
from .writers import RESULT_FIELDS, _typed_csv_row, iter_records, open_writer, read_results, result_format

ADD_REWRITES = {"references.csv", "vectors.faiss", "raw_descriptors.npy", "local_features.npz",
                "shared_keypoints.npz", "likeness.npz", "thumbnails.npz", "hue_histograms.npz"}  # what index add rewrites
MODEL_KEYS = ("descriptor", "backbone_timm", "weights_sha256", "preprocessing", "runtime")


@dataclass(frozen=True)
class RescanSettings:
    """How far a decision made on stored float16 descriptors must be from its threshold to be trusted.

    gate_margin : gate score (probability) below the gate threshold by at least this, else rechecked
    similarity_margin : cosine by which new references must stay below the 20th candidate and the best window
    score_margin : brand score (probability) distance to the operating threshold of a rescored listing
    chunk : listings whose global stage is redone at a time
    batch_size : images read and matched again at a time
    """

    gate_margin: float = 0.02
    similarity_margin: float = 0.01
    score_margin: float = 0.01
    chunk: int = 512
    batch_size: int = 32


@dataclass
class RescanSummary:
    """Counts of one re-scan: how each listing was handled, and the verdicts that changed (old -> new)."""

    results: Path
    total: int = 0
    carried: int = 0
    carried_past_gate: int = 0  # of the carried, those the gate may have passed (checked stage by stage)
    rescored: int = 0
    rechecked: int = 0
    failed: int = 0
    seconds: float = 0.0
    verdicts: Counter = field(default_factory=Counter)
    changed: Counter = field(default_factory=Counter)

    def line(self) -> str:
        changes = ", ".join(f"{old or 'none'} -> {new} {n}" for (old, new), n in sorted(self.changed.items()))
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items()))
        return (f"{self.total} listings re-checked in {self.seconds:.1f} s: {self.carried} unchanged "
                f"({self.carried_past_gate} past the gate), "
                f"{self.rescored} re-scored from stored descriptors, {self.rechecked} images read and matched again"
                f"{f', {self.failed} failed before' if self.failed else ''}; verdicts: {verdicts or 'none'}; "
                f"changed: {changes or 'none'}")


def rescan(results: str | os.PathLike, matcher: Matcher, out: str | os.PathLike, *, top_k: int = 5,
           settings: RescanSettings = RescanSettings(), threads: int = 2) -> RescanSummary:
    """Re-check the listings of ``results`` (a ``matcher scan`` results file with its stored descriptors) against
    ``matcher``'s index version; write the new results file ``out`` (ranked, with its own stored descriptors).

    threads : images read again at once (decoding releases the GIL)
    Raises MatcherError (one line) for a results file without descriptors, IndexMismatchError for descriptors
    made by another model, OutputPathError for an ``out`` that is the results file or lies in the index.
    """
    started = time.perf_counter()
    results, out = Path(results), Path(out)
    check_output(out, "re-scanned results", inputs=[("results file", results)],
                 folders=[("index folder", matcher.index_dir)])
    history = read_history(results)
    fingerprint = matcher.embedder.fingerprint()
    _check_model(results, history.meta.get("fingerprint", {}), fingerprint, matcher.index_dir)
    plan = _Plan(matcher, history.meta, settings)
    summary = RescanSummary(results=out)
    audit = audit_fields(matcher.version)
    log = DescriptorLog(out, matcher.version, fingerprint)
    rows = _rows(results)
    first = next(rows, None)
    extras = [k for k in (first or {}) if k not in RESULT_FIELDS and k not in ("position", "matches")]
    with open_writer(out, extra_fields=extras) as writer, \
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="matcher-rescan") as pool:
        for chunk in _chunks([first] if first else [], rows, settings.chunk):
            for old, new, descriptor, how in plan.judge(chunk, history, top_k, audit, extras, pool):
                if how == "carried_past_gate":
                    summary.carried_past_gate += 1
                    how = "carried"
                setattr(summary, how, getattr(summary, how) + 1)
                summary.total += 1
                if new.get("status") == "ok":
                    summary.verdicts[new["verdict"]] += 1
                    if new["verdict"] != old.get("verdict"):
                        summary.changed[(old.get("verdict"), new["verdict"])] += 1
                log.add(new["position"], descriptor)
                writer.write(new)
            log.flush()
            writer.flush()
    log.finish()
    rank_results(out)
    summary.seconds = time.perf_counter() - started
    return summary


class _Plan:
    """What the new version changed since the scan, and how each old row is judged against it."""

    def __init__(self, matcher: Matcher, meta: dict, settings: RescanSettings):
        self.matcher, self.settings = matcher, settings
        scanned = meta["index_version"]
        now = version_record(matcher.version)
        old_files, new_files = scanned.get("files", {}), now["files"]
        whitening = new_files.get("whitening.npz")
        # format 1 kept no crops or raw descriptor: its listings are all read again (their new rows need them)
        self.same_space = (whitening is not None and old_files.get("whitening.npz") == whitening
                           and meta.get("format") == FORMAT)
        changed = {name for name in set(old_files) | set(new_files) if old_files.get(name) != new_files.get(name)}
        old_ids, new_ids = reference_ids(scanned), reference_ids(now)
        self.carry = self.same_space and changed <= ADD_REWRITES and old_ids <= new_ids
        refs = matcher.version.refs
        added = sorted(new_ids - old_ids)
        self.reach = Reach(matcher.version, matcher.index_dir, scanned, added,
                           margin=settings.similarity_margin, candidates=matcher.settings.candidates,
                           verify_top=matcher.settings.verify_top)
        # past the gate the stored crops, raw descriptor and settings must be those of this cascade
        self.past_gate = matcher.settings.region_grid <= 2 and meta.get("cascade") == asdict(matcher.settings)
        # the analysts' feedback (disabled references, negative examples, known fakes: cascade.feedback) needs the
        # image or the whole cascade; with any, listings are carried or read again, never re-scored
        feedback = getattr(refs, "feedback", None)
        self.rescore = not any(getattr(feedback, name, None) for name in ("disabled", "negatives", "known_fakes"))

    def judge(self, rows: list[dict], history, top_k: int, audit: dict, extras: list[str],
              pool: ThreadPoolExecutor) -> Iterator[tuple[dict, dict, np.ndarray | None, str]]:
        """(old row, new row, its descriptor, how: carried / rescored / rechecked / failed) for each row, in
        order; the rows to recheck are read and matched together."""
        version, settings = self.matcher.version, self.settings
        stored = [r for r in rows if r.get("status") == "ok" and self.same_space and history.has(r["position"])]
        decided: dict[int, tuple[dict, np.ndarray | None, str]] = {}
        if stored:
            vectors = np.asarray(history.vectors[[r["position"] for r in stored]], np.float32)
            evidence = global_stage(version.refs, vectors[:, 0], vectors[:, WINDOW_ROWS], self.matcher.settings)
            margins = gate_margin(version.scorer, evidence)
            for row, ev, vector, margin in zip(stored, evidence, vectors, margins):
                stopped = margin < -settings.gate_margin
                if self.carry and (stopped or self.past_gate) and self.reach.global_untouched(ev, vector, not stopped):
                    if stopped:
                        decided[row["position"]] = (dict(row, **audit), vector, "carried")
                        continue
                    if self.reach.past_gate_untouched(ev, vector):
                        decided[row["position"]] = (dict(row, **audit), vector, "carried_past_gate")
                        continue
                if not stopped:
                    continue  # the gate may pass it: rechecked below
                result = score_with_feedback(version.refs, version.scorer, ev) if self.rescore else None
                if result is not None and abs(result.score - version.scorer.threshold) >= settings.score_margin:
                    new = result_row(_listing(row, extras), result, top_k, self.matcher.typical_prices, audit)
                    decided[row["position"]] = (dict(new, cluster_id=row.get("cluster_id") or ""), vector,
                                                "rescored")
        todo = [r for r in rows if r.get("status") == "ok" and r["position"] not in decided]
        for row, (new, descriptor) in zip(todo, self._recheck(todo, top_k, audit, extras, pool)):
            decided[row["position"]] = (new, descriptor, "rechecked")
        for row in rows:
            new, descriptor, how = decided.get(row["position"], (dict(row, **audit), None, "failed"))
            yield row, new, None if descriptor is None else np.asarray(descriptor, np.float16), how

    def _recheck(self, rows: list[dict], top_k: int, audit: dict, extras: list[str],
                 pool: ThreadPoolExecutor) -> list[tuple[dict, np.ndarray | None]]:
        """Read and match the rows' images again, as a scan does; (new row, descriptor) per row."""
        out = []
        for start in range(0, len(rows), self.settings.batch_size):
            batch = rows[start:start + self.settings.batch_size]
            listings = [_listing(r, extras) for r in batch]
            decoded = list(pool.map(lambda item: read_listing(item.path, item.listing)[1], listings))
            for row, listing, result in zip(batch, listings, self.matcher.match_decoded(decoded)):
                new = result_row(listing, result, top_k, self.matcher.typical_prices, audit)
                out.append((dict(new, cluster_id=row.get("cluster_id") or ""), result.descriptor))
        return out


def _check_model(results: Path, stored: dict, current: dict, index_dir: Path) -> None:
    if any(stored.get(key) != current.get(key) for key in MODEL_KEYS):
        raise IndexMismatchError(f"{results}: its stored descriptors were made by {model_name(stored)}, the index "
                                 f"{index_dir} uses {model_name(current)}; scan the listings again with `matcher scan`")


def _listing(row: dict, extras: list[str]) -> Listing:
    """The scan's ``Listing`` of an old row (manifest columns, listing_id, path, position)."""
    fields = {k: "" if row.get(k) is None else str(row.get(k)) for k in extras}
    if row.get("listing_id"):
        fields["listing_id"] = str(row["listing_id"])
    return Listing(str(row["listing"]), Path(row["path"]), fields, int(row["position"]))


def _rows(results: Path) -> Iterator[dict]:
    """The rows of a results file, streamed (Parquet read whole), typed as ``read_results`` types them."""
    fmt = result_format(results)
    if not results.is_file():
        raise MatcherError(f"{results}: no such results file")
    if fmt not in ("jsonl", "csv"):
        yield from read_results(results)
        return
    header = None
    for _, value in iter_records(results, fmt):
        if value is None:
            continue
        if fmt == "jsonl":
            yield value
        elif header is None:
            header = value
        else:
            yield _typed_csv_row(dict(zip(header, value)))


def _chunks(head: list[dict], rest: Iterator[dict], size: int) -> Iterator[list[dict]]:
    chunk = list(head)
    for row in rest:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
