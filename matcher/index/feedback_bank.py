"""An index version's analyst feedback: negative examples, known counterfeit photos, disabled references, and
the append-only log of the decisions that made them (issue #29).

- **negative examples**: listing images marked ``false_positive`` for a brand. The cascade
  (``cascade.feedback``) stops a listing matching that brand when it is a near-duplicate of a negative and not a
  better match to one of the brand's references than to the negative. Kept as raw CNN descriptors (whitened at
  load with the version's whitening, like the references) and SIFT features (to verify a near-duplicate).
- **known fakes**: listing images marked ``counterfeit`` for a brand. Each is a reference of the index (a row of
  ``references.csv`` named ``known-fakes/<brand>/<listing>``, searched and verified like any reference) and is
  listed here, so that brand counts, prototypes and the manifest do not take it for a genuine photo.
- **disabled references**: references that stay in the index but match nothing (the cascade hides them from
  every listing, as a build hides references from its synthetic listings).
- **decisions**: one JSON object per decision (who, when, what, the version it changed and the one it made);
  every later version (feedback, add, remove) carries the lines over unchanged and only appends.

Files, written only when there is feedback (an index without any is byte-identical to one made before):
``feedback.json`` (the negatives', fakes' and disabled references' records), ``negatives.npz`` (the negatives'
raw descriptors and packed SIFT features) and ``decisions.jsonl``. The manifest lists them with their sha256
like every file, so ``index verify`` and every open check them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
import json
from pathlib import Path

import numpy as np

from ..features.sift import LocalFeatures, pack_features, unpack_features
from .manifest import verified
from .store import read_references

FEEDBACK_FILE = "feedback.json"
NEGATIVES_FILE = "negatives.npz"
DECISIONS_FILE = "decisions.jsonl"
FEEDBACK_FILES = (FEEDBACK_FILE, NEGATIVES_FILE, DECISIONS_FILE)
KNOWN_FAKES_FOLDER = "known-fakes"  # known fakes are named known-fakes/<brand>/<listing> among the references


@dataclass(frozen=True)
class Marked:
    """One marked listing image: a negative example or a known fake.

    brand : the brand it was marked for
    listing : how the decisions file named it (a listing path or id)
    sha256 : of the image file
    time : UTC time of the decision, ISO 8601
    by : who decided ($USER)
    note : the analyst's note ('' when none)
    ref_id : a known fake's reference id (-1 for a negative)
    """

    brand: str
    listing: str
    sha256: str
    time: str
    by: str = ""
    note: str = ""
    ref_id: int = -1

    @property
    def date(self) -> str:
        """The day of the decision, YYYY-MM-DD (what explanations quote)."""
        return self.time[:10]

    def as_dict(self) -> dict:
        return {"brand": self.brand, "listing": self.listing, "sha256": self.sha256, "time": self.time,
                "by": self.by, "note": self.note, "ref_id": self.ref_id}


@dataclass(frozen=True)
class FeedbackBank:
    """The feedback of one index version (see the module docstring).

    negatives : the negative examples' records, row i of ``negative_raw`` / ``negative_features``
    negative_raw : float32 (m, D), their raw CNN descriptors (L2-normalised, ``Embedder.describe``)
    negative_features : their SIFT features (``features.sift``), one per negative
    known_fakes : reference id -> the known fake's record
    disabled : reference id -> {"time", "by"} of the decision that disabled it
    decisions : the decision log, oldest first (JSON objects)
    """

    negatives: tuple[Marked, ...] = ()
    negative_raw: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    negative_features: tuple[LocalFeatures, ...] = ()
    known_fakes: dict[int, Marked] = field(default_factory=dict)
    disabled: dict[int, dict] = field(default_factory=dict)
    decisions: tuple[dict, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.negatives or self.known_fakes or self.disabled or self.decisions)

    def negatives_of(self, brand: str) -> list[int]:
        """Rows of the negatives marked for ``brand``."""
        return [i for i, n in enumerate(self.negatives) if n.brand == brand]

    def keeping(self, ref_ids: set[int], brands: set[str]) -> "FeedbackBank":
        """The feedback that still applies once only references ``ref_ids`` of brands ``brands`` are left (after
        ``index remove`` or ``add``); the decision log is kept whole."""
        rows = [i for i, n in enumerate(self.negatives) if n.brand in brands]
        return replace(self, negatives=tuple(self.negatives[i] for i in rows),
                       negative_raw=self.negative_raw[rows] if len(self.negative_raw) else self.negative_raw,
                       negative_features=tuple(self.negative_features[i] for i in rows),
                       known_fakes={i: m for i, m in self.known_fakes.items() if i in ref_ids},
                       disabled={i: d for i, d in self.disabled.items() if i in ref_ids})

    def save_into(self, folder: Path) -> None:
        """Write the feedback files into a version folder (none when there is no feedback)."""
        if not self:
            return
        record = {"negatives": [n.as_dict() for n in self.negatives],
                  "known_fakes": [m.as_dict() for _, m in sorted(self.known_fakes.items())],
                  "disabled": [{"ref_id": i, **d} for i, d in sorted(self.disabled.items())]}
        (folder / FEEDBACK_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        if self.negatives:
            np.savez(folder / NEGATIVES_FILE, raw=np.asarray(self.negative_raw, np.float32),
                     **pack_features(self.negative_features))
        with open(folder / DECISIONS_FILE, "w", encoding="utf-8") as f:
            for line in self.decisions:
                f.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, folder: Path, raw_dim: int) -> "FeedbackBank":
        """The feedback of a version folder (an empty bank when it has none). The caller has checked the files
        against the manifest; a malformed file raises (ValueError, KeyError, ...: ``references.READ_ERRORS``)."""
        meta_path = folder / FEEDBACK_FILE
        if not meta_path.is_file():
            return cls(negative_raw=np.zeros((0, raw_dim), np.float32))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        negatives = tuple(_marked(n) for n in meta["negatives"])
        raw, features = np.zeros((0, raw_dim), np.float32), ()
        if negatives:
            with np.load(folder / NEGATIVES_FILE) as arrays:
                loaded = {key: arrays[key] for key in arrays.files}
            raw, features = np.asarray(loaded.pop("raw"), np.float32), tuple(unpack_features(loaded))
            if raw.shape != (len(negatives), raw_dim) or len(features) != len(negatives):
                raise ValueError(f"{NEGATIVES_FILE} holds {raw.shape} descriptors and {len(features)} feature sets "
                                 f"for {len(negatives)} negatives of dimension {raw_dim}")
        decisions = ()
        if (folder / DECISIONS_FILE).is_file():
            lines = (folder / DECISIONS_FILE).read_text(encoding="utf-8").splitlines()
            decisions = tuple(json.loads(line) for line in lines if line.strip())
        return cls(negatives=negatives, negative_raw=raw, negative_features=features,
                   known_fakes={int(m["ref_id"]): _marked(m) for m in meta["known_fakes"]},
                   disabled={int(d["ref_id"]): {k: v for k, v in d.items() if k != "ref_id"} for d in meta["disabled"]},
                   decisions=decisions)


def _marked(record: dict) -> Marked:
    return Marked(brand=str(record["brand"]), listing=str(record["listing"]), sha256=str(record["sha256"]),
                  time=str(record["time"]), by=str(record.get("by", "")), note=str(record.get("note", "")),
                  ref_id=int(record.get("ref_id", -1)))


def labelled_references(folder: Path, files: dict | None) -> list[tuple[int, str, str, str]]:
    """(id, brand, path, label) of every reference of a version folder, ids ascending; label is ``genuine``,
    ``known fake``, and ``, disabled`` added to either. Reads only references.csv and feedback.json, each checked
    against the manifest's ``files`` first (no CNN, no FAISS: for ``matcher index info --references``)."""
    references = read_references(verified(folder, files, "references.csv") or folder / "references.csv")
    meta_path = verified(folder, files, FEEDBACK_FILE)
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path is not None else {}
    fakes = {int(m["ref_id"]) for m in meta.get("known_fakes", [])}
    disabled = {int(d["ref_id"]) for d in meta.get("disabled", [])}
    return [(r.id, r.brand, r.path, ("known fake" if r.id in fakes else "genuine")
             + (", disabled" if r.id in disabled else "")) for r in references]
