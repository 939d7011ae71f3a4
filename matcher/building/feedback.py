"""Analyst feedback as index versions: ``index feedback`` (negative examples and known counterfeit photos),
``index disable`` / ``index enable`` (quarantined references). Issue #29.

Each operation loads the published version, makes the new version's ``ReferenceIndex`` with ``lifecycle``'s
``_assemble`` and publishes it with ``_publish`` (``publishing.publish_version``: temporary folder, fsync, rename,
atomic ``CURRENT`` switch), exactly as ``index add`` / ``remove`` do: a run killed at any moment leaves the previous
version serving. Whitening, background and the calibrated scorer are carried over unchanged; only the images
decided on go through the CNN (a negative: 1 pass and SIFT; a known fake: 1 pass, SIFT and the
``edits_per_added_reference`` synthetic listings of the gate's likeness, as for a reference ``index add`` adds).

What the cascade does with the result: ``cascade.feedback``. What is stored: ``index.feedback_bank``. Every
decision appends one line to the version's ``decisions.jsonl`` (who, when, what, the version it changed and the
one it made), which later versions carry over.

A later decision about the same image and brand replaces an earlier one: marking a negative ``counterfeit``
drops the negative, marking a known fake ``false_positive`` drops the fake. An image already indexed under the
brand (the same file as a reference) is logged and adds nothing: it matches as a copy of that reference anyway.
"""
from __future__ import annotations

from dataclasses import replace
import difflib
import getpass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..cascade import load_embedder_for
from ..errors import FeedbackError, ImageError, MatcherError
from ..features import Embedder, extract_local_features
from ..index import IndexVersion, ReferenceRecord, published_manifest, store
from ..index.feedback_bank import KNOWN_FAKES_FOLDER, FeedbackBank, Marked, labelled_references
from ..inputs import load_image, thumbnail_jpeg
from .decisions import Decision, read_decisions
from .lifecycle import _assemble, _new_likeness, _next_id, _publish
from .publishing import Progress, now, reporter


def who() -> str:
    """Who is deciding: the login name ($USER, $LOGNAME, ... or the account), 'unknown' when there is none."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


def feedback_index(index_dir: str | Path, decisions_path: str | Path, results: Sequence[dict],
                   results_path: str | Path, *, embedder: Embedder | None = None, threads: int | None = None,
                   keep: int | None = None, progress: Progress | None = None) -> Path:
    """Publish a version of ``index_dir`` holding the decisions of ``decisions_path`` (``decisions.py``).

    results : the rows of ``results_path`` (``matcher.scan.read_results``), which name the decided listings' images
    embedder : defaults to the one the index's manifest describes (with ``threads`` CPU threads), made only once
        the decisions are checked
    Returns the published version folder. Raises FeedbackError (``file:line``) before anything is published.
    """
    say = reporter(progress)
    index_dir = Path(index_dir)
    with store.writer_lock(index_dir):
        folder, manifest = published_manifest(index_dir)  # the decisions are checked before the CNN is loaded
        references = [path for _, _, path, _ in labelled_references(folder, manifest.get("files"))]
        decisions = read_decisions(decisions_path, results, results_path, manifest.get("brands", {}), references)
        images = {d.sha256: _decode(d) for d in decisions}
        embedder = embedder or load_embedder_for(index_dir, threads=threads)
        old = IndexVersion.open(index_dir, embedder.fingerprint())
        base, by, time = old.refs, who(), now()
        changed, made = old.folder.name, store.next_version_name(index_dir)
        latest = {(d.sha256, d.brand): d for d in decisions}  # the last line about an image and brand counts
        bank = base.feedback
        # earlier feedback that a decision now reverses
        negatives = [k for k, n in enumerate(bank.negatives) if (n.sha256, n.brand) not in latest]
        dropped_fakes = {i for i, m in bank.known_fakes.items() if (m.sha256, m.brand) in latest}
        indexed = {(r.sha256, r.brand): r.path for r in base.references if r.id not in dropped_fakes}
        new_negatives = [d for d in latest.values() if d.label == "false_positive"]
        new_fakes = [d for d in latest.values() if d.label == "counterfeit" and (d.sha256, d.brand) not in indexed]
        say(f"embedding {len(new_negatives)} negative example(s) and {len(new_fakes)} known fake(s)")
        fake_images = [images[d.sha256] for d in new_fakes]
        describe = embedder.describe
        raw_fakes = describe(fake_images) if fake_images else np.zeros((0, base.raw_descriptors.shape[1]), np.float32)
        raw_negatives = (describe([images[d.sha256] for d in new_negatives]) if new_negatives
                         else np.zeros((0, base.raw_descriptors.shape[1]), np.float32))
        first_id = _next_id(old)
        paths = {r.path for r in base.references}
        records = [ReferenceRecord(first_id + k, d.brand, _fake_name(d, first_id + k, paths), d.sha256)
                   for k, d in enumerate(new_fakes)]
        effects = {id(d): "negative example" for d in new_negatives}
        effects.update({id(d): f"known fake {r.path}" for d, r in zip(new_fakes, records)})
        log = [_log_line(d, effects.get(id(d)) or _no_effect(d, indexed, latest), by, time, changed, made,
                         results_path) for d in decisions]

        def marked(d: Decision, ref_id: int = -1) -> Marked:
            return Marked(d.brand, d.listing, d.sha256, time, by, d.note, ref_id)

        feedback = FeedbackBank(
            negatives=tuple(bank.negatives[k] for k in negatives) + tuple(marked(d) for d in new_negatives),
            negative_raw=np.concatenate([bank.negative_raw.reshape(-1, base.raw_descriptors.shape[1])[negatives],
                                         raw_negatives]).astype(np.float32),
            negative_features=tuple(bank.negative_features[k] for k in negatives)
            + tuple(extract_local_features(images[d.sha256]) for d in new_negatives),
            known_fakes={**{i: m for i, m in bank.known_fakes.items() if i not in dropped_fakes},
                         **{r.id: marked(d, r.id) for d, r in zip(new_fakes, records)}},
            disabled={i: v for i, v in bank.disabled.items() if i not in dropped_fakes},
            decisions=bank.decisions + tuple(log))
        rows = [(r, True, row) for row, r in enumerate(base.references) if r.id not in dropped_fakes]
        refs = _assemble(old, rows + [(r, False, k) for k, r in enumerate(records)], raw_fakes,
                         [extract_local_features(im) for im in fake_images], [thumbnail_jpeg(im) for im in fake_images],
                         _new_likeness(old, embedder, fake_images, [r.id for r in records]), feedback=feedback)
        entry = {"op": "feedback", "time": time, "by": by, "decisions": len(decisions),
                 "negatives": len(new_negatives), "known_fakes": len(new_fakes),
                 "reversed": len(bank.negatives) - len(negatives) + len(dropped_fakes)}
        published = _publish_like(index_dir, old, refs, entry, first_id + len(records), keep)
    say(f"published {published}")
    return published


def set_enabled(index_dir: str | Path, references: Sequence[str], enabled: bool, *, keep: int | None = None,
                progress: Progress | None = None) -> Path:
    """Disable (``enabled=False``) or enable again the references named ``references`` (their paths relative to
    the catalog root, as results rows and ``matcher index info --references`` name them) and publish the version.

    A disabled reference stays in the index (vectors, features, thumbnails) but is hidden from every listing
    (``cascade.feedback``). Raises MatcherError naming an unknown reference, before anything is published.
    """
    say = reporter(progress)
    index_dir = Path(index_dir)
    names = list(dict.fromkeys(references))
    if not names:
        raise MatcherError(f"{index_dir}: no reference given")
    with store.writer_lock(index_dir):
        folder, manifest = published_manifest(index_dir)  # names checked before the version is loaded
        known = {path for _, _, path, _ in labelled_references(folder, manifest.get("files"))}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise MatcherError(f"{index_dir}: no reference {unknown[0]!r} in the index; name references by their "
                               "path as `matcher index info --references` and results rows give it"
                               + _close(unknown[0], known))
        old = IndexVersion.open(index_dir)
        base = old.refs
        by_path = {r.path: r for r in base.references}
        by, time, op = who(), now(), "enable" if enabled else "disable"
        changed, made = old.folder.name, store.next_version_name(index_dir)
        disabled = dict(base.feedback.disabled)
        log = []
        for name in names:
            ref_id = by_path[name].id
            effect = ("already enabled" if enabled and ref_id not in disabled
                      else "already disabled" if not enabled and ref_id in disabled else op + "d")
            if enabled:
                disabled.pop(ref_id, None)
            else:
                disabled.setdefault(ref_id, {"time": time, "by": by})
            log.append({"time": time, "by": by, "op": op, "reference": name, "brand": by_path[name].brand,
                        "effect": effect, "changed": changed, "version": made})
            say(f"{name}: {effect}")
        feedback = replace(base.feedback, disabled=disabled, decisions=base.feedback.decisions + tuple(log))
        refs = _assemble(old, [(r, True, row) for row, r in enumerate(base.references)],
                         np.zeros((0, base.raw_descriptors.shape[1]), np.float32), [], [], feedback=feedback)
        entry = {"op": op, "time": time, "by": by, "references": names}
        published = _publish_like(index_dir, old, refs, entry, _next_id(old), keep)
    say(f"published {published}")
    return published


def _publish_like(index_dir: Path, old: IndexVersion, refs, entry: dict, next_id: int, keep: int | None) -> Path:
    """Publish ``refs`` with ``old``'s fingerprint, scorer, skipped references and typical prices."""
    manifest = old.manifest
    return _publish(index_dir, old, refs, manifest.get("fingerprint", {}), entry,
                    list(manifest.get("skipped_references", [])), next_id, keep,
                    dict(manifest.get("typical_prices", {})))


def _close(name: str, known) -> str:
    """'; closest: ...' with the known names most like ``name`` ('' when none is close)."""
    close = difflib.get_close_matches(name, sorted(known), n=3)
    return f"; closest: {', '.join(close)}" if close else ""


def _decode(d: Decision):
    try:
        return load_image(d.path)
    except ImageError as exc:
        raise FeedbackError(f"{d.source}: listing {d.listing!r}: {exc}") from None


def _fake_name(d: Decision, ref_id: int, taken: set[str]) -> str:
    """``known-fakes/<brand>/<the image's file name>`` (its reference id added when that name is taken)."""
    name = d.path.name
    path = f"{KNOWN_FAKES_FOLDER}/{d.brand}/{name}"
    if path in taken:
        path = f"{KNOWN_FAKES_FOLDER}/{d.brand}/{ref_id}-{name}"
    taken.add(path)
    return path


def _no_effect(d: Decision, indexed: dict, latest: dict) -> str:
    """Why a decision adds nothing: the image is already a reference, or a later line decided it."""
    if latest[(d.sha256, d.brand)] is not d:
        return f"none: decided again at {latest[(d.sha256, d.brand)].source}"
    return f"none: the same image as reference {indexed[(d.sha256, d.brand)]}"


def _log_line(d: Decision, effect: str, by: str, time: str, changed: str, made: str, results_path) -> dict:
    """One line of decisions.jsonl."""
    return {"time": time, "by": by, "op": "feedback", "label": d.label, "brand": d.brand, "listing": d.listing,
            "sha256": d.sha256, "note": d.note, "source": d.source, "results": str(results_path),
            "effect": effect, "changed": changed, "version": made}
