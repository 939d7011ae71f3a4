"""What a re-scan measures again on a listing's image, short of the CNN (``rescan.py``'s ``remeasured`` path).

When a fresh scan would SIFT-verify a listing against references the scan never verified it against (most often
an added reference among its best candidates), or would compare hues the scan never measured, the stored
descriptors still give everything the CNN computed; only the image's local features and colours are missing.
``ImageMeasurements`` computes those from the decoded image, as the cascade's verification stage does
(``cascade.verification``), and ``rescore.restore_evidence`` asks it for what it needs. Reading the image and
extracting SIFT features costs about half of matching it again in full (no CNN on the image or its crops).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..cascade import CascadeSettings
from ..cascade.scoring import keypoint_pairs
from ..cascade.stored_evidence import Checked
from ..cascade.verification import reference_colour_distance, verify_references
from ..features import extract_local_features
from ..features.colour import MIN_INLIERS, colour_pixels, hue_histogram
from ..features.sift import Verification
from ..index import ReferenceIndex


class ImageMeasurements:
    """Measurements of one decoded listing image against references of ``refs``, made on demand.

    ``verify`` SIFT-verifies a group of references together, as the cascade verifies the candidates of one step
    (the mirror image is tried or not for the whole group); ``hues`` is the hue histogram of the image's centre.
    ``verification`` keeps every SIFT result by reference id, for the keypoints a results row shows.
    """

    def __init__(self, refs: ReferenceIndex, image: Image.Image, settings: CascadeSettings):
        self.refs, self.image, self.settings = refs, image, settings
        self.image_size = image.size
        self.verification: dict[int, Verification] = {}
        self._query = None
        self._pixels = None

    def prepare(self) -> "ImageMeasurements":
        """Extract the image's local features now (OpenCV releases the GIL: a worker thread can do it)."""
        self._local_features()
        return self

    def verify(self, ref_ids: list[int], after_regions: bool) -> dict[int, Checked]:
        """What the cascade's verification finds against ``ref_ids``, verified together at one step (before or
        ``after_regions``), colour differences included where there are enough inliers."""
        found = verify_references(self.refs, self._local_features(), ref_ids,
                                  mirror_unless=self.settings.mirror_unless_inliers)
        out = {}
        for ref_id, (result, distinctive) in zip(ref_ids, found):
            self.verification[ref_id] = result
            colour = (reference_colour_distance(self.refs, self._colour_pixels(), self.image_size, ref_id, result)
                      if result.inliers >= MIN_INLIERS else None)
            out[ref_id] = Checked(result.inliers, distinctive, result.mirrored, colour, after_regions)
        return out

    def keypoints(self, ref_id: int, inliers: int) -> tuple | None:
        """The verified keypoint pairs a results row shows for its best match (``cascade.keypoint_pairs``), from
        the verification against ``ref_id`` made here, or made again alone; None when its inlier count is not
        the stored ``inliers`` (then the row cannot show the fresh scan's)."""
        found = self.verification.get(ref_id)
        if found is None:
            (found, _), = verify_references(self.refs, self._local_features(), [ref_id],
                                            mirror_unless=self.settings.mirror_unless_inliers)
        return keypoint_pairs(self.refs, found, self.image_size, ref_id) if found.inliers == inliers else None

    def hues(self) -> tuple[bool, np.ndarray | None]:
        """(True, the hue histogram of the image's centre: ``features.colour.hue_histogram``, None when grey)."""
        return True, hue_histogram(self._colour_pixels())

    def _local_features(self):
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

    def verify(self, ref_ids: list[int], after_regions: bool) -> None:
        self.wanted = True
        return None

    def keypoints(self, ref_id: int, inliers: int) -> None:
        self.wanted = True
        return None

    def hues(self) -> tuple[bool, None]:
        self.wanted = True
        return False, None
