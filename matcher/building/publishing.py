"""Publish a new index version: references and scorer written into a fresh folder, described by a manifest,
and published atomically (``index.store``: fsync, rename, ``CURRENT`` switched). A build and every lifecycle
operation publish through ``publish_version``, so a crash at any moment leaves the previous version published.
"""
from __future__ import annotations

from datetime import datetime, timezone
import json
import logging
from pathlib import Path
import platform
import shutil
from typing import Callable

import numpy as np

from ..index import ReferenceIndex, Scorer, store
from ..index.vectors import METRIC
from ..index.version import SCORER_FILE

log = logging.getLogger("matcher.building")
Progress = Callable[[str], None]


def reporter(progress: Progress | None) -> Progress:
    """Where a long operation says what it is doing: ``progress`` when given, else the log at INFO level."""
    return progress or log.info


def now() -> str:
    """The current UTC time, to the second, as ISO 8601 text (manifests and history entries)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def describe_manifest(refs: ReferenceIndex, scorer: Scorer, fingerprint: dict, extra: dict) -> dict:
    """The manifest of a version about to be published (``store.publish`` adds format and file hashes)."""
    import faiss
    import torch  # already loaded by the embedder that made the vectors

    return {
        "created": now(),
        "fingerprint": fingerprint,
        "dim": int(refs.vectors.shape[1]),
        "raw_dim": int(refs.raw_descriptors.shape[1]),
        "metric": METRIC,
        "index_type": refs.index.kind,
        "counts": {"references": sum(refs.brands.values()), "brands": len(refs.brands),
                   "background": int(len(refs.background))},
        "brands": refs.brands,  # genuine references only: known fakes and disabled ones are listed below
        **feedback_summary(refs),
        "operating_threshold": scorer.threshold,
        "library_versions": {"python": platform.python_version(), "torch": torch.__version__,
                             "faiss": faiss.__version__, "numpy": np.__version__},
        **extra,
    }


def feedback_summary(refs: ReferenceIndex) -> dict:
    """The manifest's record of a version's feedback (``index.feedback_bank``), {} without any: known fakes and
    negative examples per brand, the disabled references' paths, the number of decisions logged."""
    bank = refs.feedback
    if not bank:
        return {}
    negatives: dict[str, int] = {}
    for n in bank.negatives:
        negatives[n.brand] = negatives.get(n.brand, 0) + 1
    return {"feedback": {"known_fakes": refs.known_fake_counts, "negatives": dict(sorted(negatives.items())),
                         "disabled_references": sorted(refs.reference(i).path for i in bank.disabled),
                         "decisions": len(bank.decisions)}}


def publish_version(index_dir: Path, refs: ReferenceIndex, scorer: Scorer, fingerprint: dict, extra: dict, *,
                    keep: int) -> Path:
    """Write ``refs`` and ``scorer`` into a new version folder of ``index_dir`` and publish it, keeping ``keep``
    versions; returns the published folder. The caller holds ``store.writer_lock``. A failure removes the
    half-written folder and leaves the published version as it was."""
    temp = store.new_version_folder(index_dir)
    try:
        refs.save_into(temp)
        (temp / SCORER_FILE).write_text(json.dumps(scorer.to_dict(), indent=1) + "\n", encoding="utf-8")
        return store.publish(index_dir, temp, describe_manifest(refs, scorer, fingerprint, extra), keep=keep)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
