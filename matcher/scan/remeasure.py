"""What a re-scan measures again on a listing's image, short of the CNN (``rescan.py``'s ``remeasured`` path).

When a fresh scan would SIFT-verify a listing against references the scan never verified it against (most often
an added reference among its best candidates), or would compare hues the scan never measured, the stored
descriptors still give everything the CNN computed; only the image's local features and colours are missing.
``ImageMeasurements`` computes those from the decoded image, as the cascade's verification stage does
(``cascade.verification``), and ``rescore.restore_evidence`` asks it for what it needs: typically one added
reference, verified as it is and mirrored, where a fresh scan verifies six. No CNN runs on the image or its
crops.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..cascade import CascadeSettings
from ..cascade.layout import photo_panels
from ..cascade.scoring import keypoint_pairs
from ..cascade.stored_evidence import Checked
from ..cascade.verification import reference_colour_distance
from ..features import extract_local_features
from ..features.colour import MIN_INLIERS, colour_pixels, hue_histogram
from ..features.sift import LocalFeatures, Verification, mirror_features, verify_against
from ..index import ReferenceIndex
from ..index.shared_keypoints import distinctive_inliers


class ImageMeasurements:
    """Measurements of one decoded listing image against references of ``refs``, made on demand and kept.

    Verification is split as the cascade's is made (``features.sift.verify_against``): the listing as it is
    against each reference (``plain_inliers``), and the mirror image, which the cascade tries for a whole step's
    group unless one of them verifies with ``mirror_unless_inliers`` as it is (``verify``). ``verification`` keeps
    the result used per reference id, for the keypoints a results row shows.
    """

    def __init__(self, refs: ReferenceIndex, image: Image.Image, settings: CascadeSettings):
        self.refs, self.image, self.settings = refs, image, settings
        self.image_size = image.size
        self.verification: dict[int, Verification] = {}
        self._plain: dict[int, Verification] = {}
        self._mirrored: dict[int, Verification] = {}
        self._query: LocalFeatures | None = None
        self._pixels = None

    def prepare(self) -> "ImageMeasurements":
        """Extract the image's local features now (OpenCV releases the GIL: a worker thread can do it)."""
        self._local_features()
        return self

    def plain_inliers(self, ref_ids: list[int]) -> dict[int, int]:
        """Inliers of the listing as it is (not mirrored) with each of ``ref_ids``."""
        self._measure(self._plain, ref_ids, self._local_features())
        return {r: self._plain[r].inliers for r in ref_ids}

    def verify(self, ref_ids: list[int], mirror: bool, after_regions: bool) -> dict[int, Checked]:
        """What the cascade's verification finds against ``ref_ids`` at one step (before or ``after_regions``),
        the mirror image tried or not (``mirror``: no reference of the step's group verifies with
        ``mirror_unless_inliers`` as the listing is), colour differences included where there are enough inliers."""
        self.plain_inliers(ref_ids)
        if mirror:
            self._measure(self._mirrored, ref_ids, mirror_features(self._local_features()))
        out = {}
        for ref_id in ref_ids:
            found = self._plain[ref_id]
            if mirror and self._mirrored[ref_id].inliers > found.inliers:  # ties keep the plain one, as the cascade
                found = self._mirrored[ref_id]
            self.verification[ref_id] = found
            row = self.refs.row_of_id[ref_id]
            colour = (reference_colour_distance(self.refs, self._colour_pixels(), self.image_size, ref_id, found)
                      if found.inliers >= MIN_INLIERS else None)
            out[ref_id] = Checked(found.inliers, distinctive_inliers(self.refs.shared_keypoints[row],
                                                                     found.reference_index),
                                  found.mirrored, colour, after_regions)
        return out

    def keypoints(self, ref_id: int, inliers: int) -> tuple | None:
        """The verified keypoint pairs a results row shows for its best match (``cascade.keypoint_pairs``), from
        the verification against ``ref_id`` with ``inliers`` inliers (the listing as it is, else mirrored), made
        here or now; None when neither has that count (then the row cannot show the fresh scan's)."""
        found = self.verification.get(ref_id)
        if found is None or found.inliers != inliers:
            self.plain_inliers([ref_id])
            found = self._plain[ref_id]
            if found.inliers != inliers:
                self._measure(self._mirrored, [ref_id], mirror_features(self._local_features()))
                found = self._mirrored[ref_id]
        return keypoint_pairs(self.refs, found, self.image_size, ref_id) if found.inliers == inliers else None

    def hues(self) -> tuple[bool, np.ndarray | None]:
        """(True, the hue histogram of the image's centre: ``features.colour.hue_histogram``, None when grey)."""
        return True, hue_histogram(self._colour_pixels())

    def single_photo(self) -> bool:
        """Whether the image is not a multi-photo layout (``cascade.layout.photo_panels``)."""
        return not photo_panels(self.image)

    def _measure(self, kept: dict[int, Verification], ref_ids: list[int], query: LocalFeatures) -> None:
        todo = [r for r in ref_ids if r not in kept]
        if todo:
            found = verify_against(query, [self.refs.local_features[self.refs.row_of_id[r]] for r in todo])
            kept.update(zip(todo, found))

    def _local_features(self) -> LocalFeatures:
        if self._query is None:
            self._query = extract_local_features(self.image, long_side=self.settings.sift_long_side,
                                                 max_features=self.settings.sift_features)
        return self._query

    def _colour_pixels(self):
        if self._pixels is None:
            self._pixels = colour_pixels(self.image)
        return self._pixels


class ImageWanted:
    """Stands in for ``ImageMeasurements`` when no image was read: it measures nothing and remembers that the
    image would have helped, so the re-scan reads it and tries again with ``ImageMeasurements``."""

    def __init__(self):
        self.wanted = False
        self.image_size = (0, 0)
        self.verification: dict[int, Verification] = {}

    def plain_inliers(self, ref_ids: list[int]) -> None:
        self.wanted = True
        return None

    def verify(self, ref_ids: list[int], mirror: bool, after_regions: bool) -> None:
        self.wanted = True
        return None

    def keypoints(self, ref_id: int, inliers: int) -> None:
        self.wanted = True
        return None

    def hues(self) -> tuple[bool, None]:
        self.wanted = True
        return False, None

    def single_photo(self) -> bool:
        self.wanted = True
        return False
