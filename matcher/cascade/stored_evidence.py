"""What a scan keeps of one listing's expensive stages, so that a re-scan can score the listing against a newer
index version without reading its image again (``scan/rescore.py``).

The expensive stages measure the listing against some references: SIFT inliers (and the distinctive ones, and
whether the mirror image matched) with each verified candidate, the colour differences where a match aligned
the two photos, and the hue histogram of the listing's centre. None of that changes when references are added,
so a re-scan needs the image only for references it has not measured against.

Kept as one float16 vector of ``SLOTS`` values, the last rows of the listing's stored descriptor
(``descriptors.py``). float16 holds whole numbers up to 2048 exactly, so a count or id is kept as two parts
(n // 2048, n % 2048), and a float as two parts (its float16 value and the remainder: exact to ~1e-7 relative).
Layout: flags (``_FLAGS``), the hue histogram (2 x HUE_BINS), the number of verified candidates, then
``_PER_CANDIDATE`` values per verified candidate (at most ``MAX_VERIFIED``), then the number of references the
region search's crops brought up and their ids (at most ``MAX_REGION_HITS``). All zeros: nothing kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..features.colour import HUE_BINS, ColourDifference
from .evidence import NOT_VERIFIED, ListingEvidence

_FLAGS = ("kept", "dismissed", "verified", "regions_searched", "hues_measured", "grey", "panels_searched")
_PER_CANDIDATE = 14  # ref id 2, inliers 2, distinctive 2, mirrored + 2 x after regions 1, colour measured 1,
#                      typical/patch/mismatch 6
MAX_VERIFIED = 12  # the cascade verifies verify_top (6) candidates, and as many again after the region search
MAX_REGION_HITS = 15  # 3 crops embedded x 5 nearest references each (region_grid 2)
_HUES = len(_FLAGS)
_COUNT = _HUES + 2 * HUE_BINS
_HITS = _COUNT + 1 + MAX_VERIFIED * _PER_CANDIDATE
SLOTS = _HITS + 1 + 2 * MAX_REGION_HITS
_BASE = 2048  # float16 holds every whole number up to this
_LARGEST = _BASE * _BASE - 1


@dataclass(frozen=True)
class Checked:
    """What verification found against one reference: inliers, distinctive inliers (``NOT_VERIFIED`` or a count),
    whether the mirror image matched, the colour differences (None when not measured), and whether it was
    verified after the region search (among the candidates it ranked first) rather than before."""

    inliers: int
    distinctive: int
    mirrored: bool
    colour: ColourDifference | None
    after_regions: bool = False


@dataclass
class StoredEvidence:
    """A listing's expensive-stage evidence, independent of which references an index holds.

    hues : the hue histogram of the listing's centre (HUE_BINS,) or None when grey; meaningful when
        ``hues_measured`` (the colour check ran: past the gate)
    checked : reference id -> what verification found against it
    region_hits : the reference ids the region search's crops brought up (``ListingEvidence.region_hits``)
    """

    dismissed: bool = False
    verified: bool = False
    regions_searched: bool = False
    hues_measured: bool = False
    hues: np.ndarray | None = None
    checked: dict[int, Checked] = field(default_factory=dict)
    region_hits: tuple[int, ...] = ()
    panels_searched: bool = False

    @classmethod
    def of(cls, ev: ListingEvidence) -> "StoredEvidence":
        checked = {c.ref_id: Checked(c.inliers, c.distinctive, c.mirrored, c.colour_distance,
                                     c.verified_after_regions)
                   for c in ev.candidates if c.inliers != NOT_VERIFIED}
        return cls(ev.dismissed, ev.verified, ev.regions_searched, ev.hues_measured, ev.hues, checked,
                   ev.region_hits, ev.panels_searched)

    def pack(self) -> np.ndarray:
        """float16 (SLOTS,); all zeros (nothing kept) when it does not fit: more than MAX_VERIFIED candidates
        checked or MAX_REGION_HITS region hits, or a reference id beyond what two parts hold."""
        out = np.zeros(SLOTS, np.float16)
        ids = [*self.checked, *self.region_hits]
        if len(self.checked) > MAX_VERIFIED or len(self.region_hits) > MAX_REGION_HITS or any(
                not 0 <= r <= _LARGEST for r in ids):
            return out
        flags = (True, self.dismissed, self.verified, self.regions_searched, self.hues_measured, self.hues is None,
                 self.panels_searched)
        out[:_HUES] = flags
        if self.hues is not None:
            out[_HUES:_COUNT] = _split_floats(np.asarray(self.hues, np.float64))
        out[_COUNT] = len(self.checked)
        at = _COUNT + 1
        for ref_id, found in sorted(self.checked.items()):
            colour = found.colour or ColourDifference(0.0, 0.0, 0.0)
            out[at:at + _PER_CANDIDATE] = np.concatenate([
                _split_count(ref_id), _split_count(found.inliers), _split_count(found.distinctive),
                [float(found.mirrored) + 2.0 * found.after_regions, float(found.colour is not None)],
                _split_floats(np.asarray(colour))])
            at += _PER_CANDIDATE
        out[_HITS] = len(self.region_hits)
        for k, ref_id in enumerate(self.region_hits):
            out[_HITS + 1 + 2 * k:_HITS + 3 + 2 * k] = _split_count(ref_id)
        return out


def unpack_evidence(slots: np.ndarray) -> StoredEvidence | None:
    """The StoredEvidence of ``pack``'s (SLOTS,) vector; None when nothing was kept."""
    values = np.asarray(slots, np.float64)
    if values[0] != 1.0:
        return None
    _, dismissed, verified, regions, measured, grey, panels = (bool(v) for v in values[:_HUES])
    hues = None if grey else _join_floats(values[_HUES:_COUNT])
    checked = {}
    for k in range(int(values[_COUNT])):
        at = _COUNT + 1 + k * _PER_CANDIDATE
        part = values[at:at + _PER_CANDIDATE]
        colour = ColourDifference(*_join_floats(part[8:14])) if part[7] else None
        checked[_join_count(part[0:2])] = Checked(_join_count(part[2:4]), _join_count(part[4:6]),
                                                  bool(int(part[6]) & 1), colour, bool(int(part[6]) & 2))
    hits = tuple(_join_count(values[_HITS + 1 + 2 * k:_HITS + 3 + 2 * k]) for k in range(int(values[_HITS])))
    return StoredEvidence(dismissed, verified, regions, measured, hues, checked, hits, panels)


def _split_count(n: int) -> list[float]:
    """A whole number in [-1, _LARGEST] (NOT_VERIFIED is -1) as two float16-exact parts."""
    shifted = int(n) + 1
    return [float(shifted // _BASE), float(shifted % _BASE)]


def _join_count(parts: np.ndarray) -> int:
    return int(parts[0]) * _BASE + int(parts[1]) - 1


def _split_floats(values: np.ndarray) -> np.ndarray:
    """(k,) floats -> (2k,) float16 parts, each value's float16 rounding followed by its remainder."""
    high = values.astype(np.float16)
    low = (values - high.astype(np.float64)).astype(np.float16)
    return np.stack([high, low], axis=1).ravel()


def _join_floats(parts: np.ndarray) -> np.ndarray:
    pairs = np.asarray(parts, np.float64).reshape(-1, 2)
    return pairs[:, 0] + pairs[:, 1]
