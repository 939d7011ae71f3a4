"""Re-scan of history: re-check a past scan's listings against a newer index version (after ``index add``)
without running the CNN again for the listings that cannot match anything new.

Every listing of the old results file takes one of three paths:

* **carried**: the new version differs from the scanned one only by added references (same whitening, scorer
  and background; no reference gone), and its stored descriptors (``history.py``) show that none of them can
  change what the cascade collects for it (``reach.py``): for a listing the gate stops, its global candidates
  and window similarity; for one it may pass (a history of a scan with the same cascade settings), also every
  window, every stored region crop, its likeness and its candidates' shared keypoints. Its row is kept as it was:
  a fresh scan would collect the same evidence.
* **rescored**: new references reach it, but what a fresh scan would measure is known: the global stage is
  redone from the stored float16 descriptors (``cascade.global_stage``); for a listing the gate passes, the
  expensive stages are rebuilt from the measurements the scan kept (``rescore.py``: only with the same cascade
  settings and an index changed by ``index add`` alone). Its scores lie far enough from every boundary
  (``rescore.clear_decision``) that the verdict and best brand are the fresh scan's.
* **remeasured**: past the gate, a fresh scan would SIFT-verify it against references it was never verified
  against (an added reference among the candidates it verifies), or compare hues the scan never measured (the
  gate stopped it then): its image is read again and only those are measured (``remeasure.py``: local features
  and colours, no CNN); the rest is rebuilt as for a rescored listing.
* **rechecked**: a stored decision would be too close to call, the region search would embed other crops than
  then (or none were kept), or it has no stored descriptor: its image is read again and matched in full, as a
  scan does.

Every decision taken from the stored descriptors, which are float16, keeps ``RescanSettings.safety`` times the
worst rounding error from its boundary (``tolerances.py``); closer calls are rechecked.

Rows that failed to decode stay as they were. Cluster ids are carried over (they depend on the images only), and
the listings the new version flags are clustered with their near-duplicates (``clusters.find_clusters``, only
the pairs with such a listing), as a fresh scan's default cluster pass clusters suspects.
The new results file gets its own stored descriptors, so re-scans chain. Descriptors made by another model are
refused in one line; an index whose whitening differs (rebuilt), or descriptors of format 1 (no crops, no raw
descriptor: scans before 2026-12-07), leave nothing to reuse: every listing is rechecked.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
import os
from pathlib import Path
import time
from typing import Iterator

import numpy as np

from ..cascade import Matcher, gate_margin, global_stage
from ..cascade.threads import one_maths_thread
from ..cascade.descriptors import WINDOW_ROWS, stored_evidence, with_evidence
from ..cascade.evidence import NOT_VERIFIED
from ..errors import ImageError, IndexMismatchError
from ..index import model_name
from ..inputs import Listing
from ..inputs.reader import read_listing
from .clusters import SUSPECT_VERDICTS, find_clusters
from .history import DescriptorLog, read_history, reference_ids, scanned_with, version_record
from .outputs import check_output
from .ranking import rank_results
from .reach import Reach
from .remeasure import ImageMeasurements, ImageWanted
from .rescore import Measure, crops_hold, restore_evidence, score_stored
from .tolerances import Tolerances, logit
from .rows import audit_fields, result_row
from .writers import RESULT_FIELDS, iter_results, open_writer

ADD_REWRITES = {"references.csv", "vectors.faiss", "raw_descriptors.npy", "local_features.npz",
                "shared_keypoints.npz", "likeness.npz", "thumbnails.npz", "hue_histograms.npz"}  # what index add rewrites
MODEL_KEYS = ("descriptor", "backbone_timm", "weights_sha256", "preprocessing", "runtime")


@dataclass(frozen=True)
class RescanSettings:
    """How a re-scan trusts decisions made on stored float16 descriptors, and its batches.

    safety : how many times the worst float16 error (``tolerances.py``) a decision must be from its boundary
        (the gate, a cosine comparison, the operating threshold, the next brand) to be taken without the image
    chunk : listings whose global stage is redone at a time
    batch_size : images read and matched again at a time
    """

    safety: float = 2.0
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
    rescored_past_gate: int = 0  # of the rescored, those past the gate (from the measurements the scan kept)
    remeasured: int = 0  # re-scored past the gate with local features or hues measured on the image (no CNN)
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
                f"{self.rescored} re-scored from stored descriptors ({self.rescored_past_gate} past the gate), "
                f"{self.remeasured} re-scored with their image's local features or hues, "
                f"{self.rechecked} images read and matched again"
                f"{f', {self.failed} failed before' if self.failed else ''}; verdicts: {verdicts or 'none'}; "
                f"changed: {changes or 'none'}")


def rescan(results: str | os.PathLike, matcher: Matcher, out: str | os.PathLike, *, top_k: int = 5,
           settings: RescanSettings = RescanSettings(), threads: int = 2) -> RescanSummary:
    """Re-check the listings of ``results`` (a ``matcher scan`` results file, or a sharded scan's folder, with its
    stored descriptors) against ``matcher``'s index version; write the new results file ``out`` (ranked, with its
    own stored descriptors).

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
    rows = iter_results(results)
    first = next(rows, None)
    extras = [k for k in (first or {}) if k not in RESULT_FIELDS and k not in ("position", "matches")]
    new_suspects: set[int] = set()  # listings the new version flags and the old one did not
    known: dict[int, str] = {}  # position -> cluster id carried over
    with open_writer(out, extra_fields=extras) as writer, \
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="matcher-rescan") as pool:
        for chunk in _chunks([first] if first else [], rows, settings.chunk):
            with one_maths_thread():  # small searches and products: idle BLAS and OpenMP threads would only spin
                judged = list(plan.judge(chunk, history, top_k, audit, extras, pool))
            for old, new, descriptor, how in judged:
                if how.endswith("_past_gate"):
                    how = how[:-len("_past_gate")]
                    setattr(summary, f"{how}_past_gate", getattr(summary, f"{how}_past_gate") + 1)
                setattr(summary, how, getattr(summary, how) + 1)
                summary.total += 1
                if new.get("status") == "ok":
                    summary.verdicts[new["verdict"]] += 1
                    if new["verdict"] != old.get("verdict"):
                        summary.changed[(old.get("verdict"), new["verdict"])] += 1
                        if new["verdict"] in SUSPECT_VERDICTS and old.get("verdict") not in SUSPECT_VERDICTS:
                            new_suspects.add(new["position"])
                if new.get("cluster_id"):
                    known[new["position"]] = new["cluster_id"]
                log.add(new["position"], descriptor)
                writer.write(new)
            log.flush()
            writer.flush()
    descriptors = log.finish()
    # the new suspects' reposts join them, as a fresh scan's cluster pass would have it (clusters.py)
    cluster_ids = find_clusters(np.load(descriptors, mmap_mode="r"), out, focus=new_suspects, known=known) \
        if new_suspects else None
    rank_results(out, cluster_ids=cluster_ids)
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
                           and meta.get("format", 1) >= 2)
        changed = {name for name in set(old_files) | set(new_files) if old_files.get(name) != new_files.get(name)}
        old_ids, new_ids = reference_ids(scanned), reference_ids(now)
        self.carry = self.same_space and changed <= ADD_REWRITES and old_ids <= new_ids
        refs = matcher.version.refs
        added = sorted(new_ids - old_ids)
        self.tolerances = Tolerances.of(matcher.version.scorer, settings.safety)
        self.reach = Reach(matcher.version, matcher.index_dir, scanned, added,
                           margin=self.tolerances.cosine, candidates=matcher.settings.candidates,
                           verify_top=matcher.settings.verify_top)
        # past the gate the stored crops, raw descriptor and settings must be those of this cascade
        self.past_gate = matcher.settings.region_grid <= 2 and scanned_with(meta, matcher.settings)
        # the analysts' feedback (disabled references, negative examples, known fakes: cascade.feedback) needs the
        # image or the whole cascade; with any, listings are carried or read again, never re-scored
        feedback = getattr(refs, "feedback", None)
        self.rescore = not any(getattr(feedback, name, None) for name in ("disabled", "negatives", "known_fakes"))
        # past the gate, re-scoring reuses what verification measured then: the references must be the same
        self.restore = (self.carry and self.past_gate and self.rescore and self.reach.exact
                        and self.reach.shared_changed is not None)
        self.stale = self.reach.shared_changed or set()

    def judge(self, rows: list[dict], history, top_k: int, audit: dict, extras: list[str],
              pool: ThreadPoolExecutor) -> Iterator[tuple[dict, dict, np.ndarray | None, str]]:
        """(old row, new row, its descriptor, how: carried / rescored / rechecked / failed) for each row, in
        order; the rows to recheck are read and matched together."""
        version = self.matcher.version
        stored = [r for r in rows if r.get("status") == "ok" and self.same_space and history.has(r["position"])]
        decided: dict[int, tuple[dict, np.ndarray | None, str]] = {}
        wanted = []  # (row, evidence, descriptor, gate) of the listings whose image would settle them
        if stored:
            vectors = np.asarray(history.vectors[[r["position"] for r in stored]], np.float32)
            evidence = global_stage(version.refs, vectors[:, 0], vectors[:, WINDOW_ROWS], self.matcher.settings)
            gates = self._gate(evidence)
            for row, ev, vector, gate in zip(stored, evidence, vectors, gates):
                stopped = gate < 0
                if self.carry and (stopped or self.past_gate) and self.reach.global_untouched(ev, vector, not stopped):
                    if stopped:
                        decided[row["position"]] = (dict(row, **audit), vector, "carried")
                        continue
                    if self.reach.past_gate_untouched(ev, vector):
                        decided[row["position"]] = (dict(row, **audit), vector, "carried_past_gate")
                        continue
                probe = ImageWanted()
                new = self._rescored(row, ev, vector, gate, top_k, audit, extras, probe)
                if new is not None:
                    decided[row["position"]] = (new, vector, "rescored" if stopped else "rescored_past_gate")
                elif probe.wanted and not self._crops_move(ev, vector):
                    wanted.append((row, ev, vector, gate))
        # the image gives what the scan did not measure, short of the CNN (remeasure.py)
        images = {}  # position -> decoded image, for those still to match in full
        for start in range(0, len(wanted), self.settings.batch_size):
            batch = wanted[start:start + self.settings.batch_size]
            measured = pool.map(lambda item: self._measurements(_listing(item[0], extras)), batch)
            for (row, ev, vector, gate), measure in zip(batch, measured):
                new = None if isinstance(measure, ImageError) else \
                    self._rescored(row, ev, vector, gate, top_k, audit, extras, measure)
                if new is not None:
                    decided[row["position"]] = (new, vector, "remeasured")
                else:
                    images[row["position"]] = measure if isinstance(measure, ImageError) else measure.image
        todo = [r for r in rows if r.get("status") == "ok" and r["position"] not in decided]
        for row, (new, descriptor) in zip(todo, self._recheck(todo, top_k, audit, extras, pool, images)):
            decided[row["position"]] = (new, descriptor, "rechecked")
        for row in rows:
            new, descriptor, how = decided.get(row["position"], (dict(row, **audit), None, "failed"))
            if descriptor is not None and how != "rechecked":
                descriptor = self._kept(descriptor)
            yield row, new, None if descriptor is None else np.asarray(descriptor, np.float16), how

    def _kept(self, descriptor: np.ndarray) -> np.ndarray:
        """A stored descriptor as the new results keep it: the distinctive inlier counts the new version changed
        marked unknown (every measurement dropped when that is unknown), which a later re-scan would misread."""
        raw_dim = self.matcher.version.refs.raw_descriptors.shape[1]
        evidence = stored_evidence(descriptor, raw_dim)
        if evidence is None:
            return descriptor
        if self.reach.shared_changed is None:
            return with_evidence(descriptor, raw_dim, None)
        if not self.stale & evidence.checked.keys():
            return descriptor
        # their other measurements stay: whether a group of them tried the mirror image depends on all of them
        evidence.checked = {r: replace(found, distinctive=NOT_VERIFIED) if r in self.stale and found.inliers else found
                            for r, found in evidence.checked.items()}
        return with_evidence(descriptor, raw_dim, evidence)

    def _gate(self, evidence: list) -> np.ndarray:
        """Per listing: -1 when the gate surely stops it, +1 when it surely passes, 0 when the float16 rounding of
        its stored descriptors could tip it (``tolerances.py``)."""
        scorer = self.matcher.version.scorer
        threshold, tolerance = ((scorer.gate_threshold, self.tolerances.gate_logit) if scorer.gate is not None
                                else (scorer.verify_gate, self.tolerances.brand_logit))
        distance = [logit(threshold + margin) - logit(threshold) for margin in gate_margin(scorer, evidence)]
        return np.asarray([0 if abs(d) < tolerance else np.sign(d) for d in distance], int)

    def _crops_move(self, ev, vector: np.ndarray) -> bool:
        """Whether the region search the scan ran for a listing would embed other crops now (``same_crops``):
        then measuring its local features alone would not do, and it is read and matched in full at once rather
        than SIFT-extracted twice. (Unless an added reference settles it, which a listing that needs its image
        for an added reference's inliers rarely is.)"""
        refs, settings = self.matcher.version.refs, self.matcher.settings
        stored = stored_evidence(vector, refs.raw_descriptors.shape[1])
        return (stored is not None and stored.regions_searched and settings.regions
                and not crops_hold(refs, stored, ev, vector, settings, added=self.reach.added,
                                   added_ids=self.reach.added_ids, margin=self.tolerances.cosine))

    def _measurements(self, listing: Listing) -> ImageMeasurements | ImageError:
        """The listing's image read again, its local features extracted (in a worker thread)."""
        image = read_listing(listing.path, listing.listing)[1]
        if isinstance(image, ImageError):
            return image
        return ImageMeasurements(self.matcher.version.refs, image, self.matcher.settings).prepare()

    def _rescored(self, row: dict, ev, vector: np.ndarray, gate: int, top_k: int, audit: dict,
                  extras: list[str], measure: Measure) -> dict | None:
        """The new row of a listing scored from its stored descriptors (``ev``: its global stage redone; ``gate``
        as ``_gate`` says) and what ``measure`` measures on its image (``ImageWanted`` when none was read), or
        None when that cannot be trusted to give the fresh scan's verdict and brand."""
        version = self.matcher.version
        if not self.rescore:
            return None
        variants = [ev]
        if gate >= 0:  # past the gate: the expensive stages rebuilt from what the scan measured
            if gate == 0 or not self.restore:
                return None
            variants = restore_evidence(version.refs, version.scorer, ev, vector, self.matcher.settings,
                                        added=self.reach.added, added_ids=self.reach.added_ids, stale=self.stale,
                                        margin=self.tolerances.cosine, measure=measure)
        result = None if not variants else score_stored(version.refs, version.scorer, variants, self.tolerances)
        if result is None:
            return None
        best = result.matches[0] if result.matches else None
        if best is not None and best.inliers > 0 and not best.keypoints:  # a fresh row shows the verified keypoints
            keypoints = _keypoints(row, best, measure)
            if keypoints is None:
                return None
            result = replace(result, matches=(replace(best, keypoints=keypoints), *result.matches[1:]))
        new = result_row(_listing(row, extras), result, top_k, self.matcher.typical_prices, audit)
        return dict(new, cluster_id=row.get("cluster_id") or "")

    def _recheck(self, rows: list[dict], top_k: int, audit: dict, extras: list[str],
                 pool: ThreadPoolExecutor, images: dict) -> list[tuple[dict, np.ndarray | None]]:
        """Read (unless ``images`` has it by position) and match the rows' images again, as a scan does; (new
        row, descriptor) per row."""
        out = []
        for start in range(0, len(rows), self.settings.batch_size):
            batch = rows[start:start + self.settings.batch_size]
            listings = [_listing(r, extras) for r in batch]
            decoded = list(pool.map(lambda item: images.pop(item.position) if item.position in images
                                    else read_listing(item.path, item.listing)[1], listings))
            for row, listing, result in zip(batch, listings, self.matcher.match_decoded(decoded)):
                new = result_row(listing, result, top_k, self.matcher.typical_prices, audit)
                out.append((dict(new, cluster_id=row.get("cluster_id") or ""), result.descriptor))
        return out


def _check_model(results: Path, stored: dict, current: dict, index_dir: Path) -> None:
    if any(stored.get(key) != current.get(key) for key in MODEL_KEYS):
        raise IndexMismatchError(f"{results}: its stored descriptors were made by {model_name(stored)}, the index "
                                 f"{index_dir} uses {model_name(current)}; scan the listings again with `matcher scan`")


def _keypoints(row: dict, best, measure: Measure) -> tuple | None:
    """The keypoint pairs of a re-scored row's best match (``cascade.Match``, verified from stored results): the
    old row's when it showed the same reference, else measured on the image (None without it)."""
    old = (row.get("matches") or [{}])[0]
    if old.get("reference") == best.reference and old.get("keypoints"):
        return tuple(tuple(pair) for pair in old["keypoints"])
    return measure.keypoints(best.ref_id, best.inliers)


def _listing(row: dict, extras: list[str]) -> Listing:
    """The scan's ``Listing`` of an old row (manifest columns, listing_id, path, position)."""
    fields = {k: "" if row.get(k) is None else str(row.get(k)) for k in extras}
    if row.get("listing_id"):
        fields["listing_id"] = str(row["listing_id"])
    return Listing(str(row["listing"]), Path(row["path"]), fields, int(row["position"]))


def _chunks(head: list[dict], rest: Iterator[dict], size: int) -> Iterator[list[dict]]:
    chunk = list(head)
    for row in rest:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
