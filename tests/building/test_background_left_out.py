"""An everyday synthetic listing is itself one of the index's background vectors; fitted on, it would teach the
scorer that everyday photos have a background similarity of 1.0. ``leave_background_out`` measures each against
the other everyday photos' listings only."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from matcher.building.build import leave_background_out
from matcher.building.calibration import SyntheticListing
from matcher.cascade import ListingEvidence


def test_each_everyday_listing_is_measured_without_the_listings_of_its_own_photo():
    image = Image.new("RGB", (8, 8))
    listings = [SyntheticListing(image, "copy", "Acme", 3, frozenset()),
                SyntheticListing(image, "background", "", -1, frozenset(), photo=0),
                SyntheticListing(image, "background", "", -1, frozenset(), photo=0),
                SyntheticListing(image, "background", "", -1, frozenset(), photo=1)]
    vectors = np.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.8, 0.6], [0.0, 0.6, 0.8]], np.float32)
    background = vectors[1:]
    evidence = [ListingEvidence([], float(np.max(background @ v))) for v in vectors]
    assert [ev.background_similarity for ev in evidence[1:]] == [1.0, 1.0, 1.0]  # each finds itself
    leave_background_out(evidence, listings, vectors, background)
    assert evidence[0].background_similarity == 0.0  # a copy keeps its own (nothing to leave out)
    assert evidence[1].background_similarity == pytest.approx(0.6)  # photo 1's listing only
    assert evidence[2].background_similarity == pytest.approx(0.96)
    assert evidence[3].background_similarity == pytest.approx(0.96)  # the nearer of photo 0's two
