"""The cascade for a batch of decoded images: embed -> search -> gate -> (verify, regions, colour) -> score.

Every listing gets the cheap global stage. Only listings that pass the index's gate (``gate.py``: they might
match something, and they look like the catalog's listings) get the expensive stages: SIFT verification of the
top candidates, then, unless a candidate verified conclusively (``CascadeSettings.settled_inliers``), a search
over image regions (``regions.py``) and verification of the candidates it brings up. Clear non-matches, the bulk
of marketplace traffic, stay cheap, and clear copies skip the region search.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Sequence

from PIL import Image
import numpy as np

from ..features import Embedder, extract_local_features
from ..index import IndexVersion, ReferenceIndex, Scorer
from .descriptors import pack_descriptor
from .evidence import ListingEvidence
from .feedback import add_negative_evidence, hidden_references, score_with_feedback
from .gate import alike, passes_gate
from .layout import photo_panels
from .regions import add_region_evidence, add_panel_evidence
from .scoring import MatchResult
from .search import global_evidence, set_window_scores, whiten_windows
from .settings import CascadeSettings
from .stored_evidence import StoredEvidence
from .threads import one_maths_thread
from .verification import add_colour_check, add_verification, hidden_brands_of, settled


def run_cascade(version: IndexVersion, embedder: Embedder, images: Sequence[Image.Image],
                settings: CascadeSettings = CascadeSettings()) -> list[MatchResult]:
    """Match decoded RGB images against an index version; one MatchResult per image, same order (BLAS and OpenMP
    on one thread throughout, see ``collect_evidence``)."""
    with one_maths_thread():
        evidence = collect_evidence(version.refs, embedder, images, settings, scorer=version.scorer)
        return [replace(score_with_feedback(version.refs, version.scorer, ev), descriptor=ev.descriptor)
                for ev in evidence]


def collect_evidence(refs: ReferenceIndex, embedder: Embedder, images: Sequence[Image.Image],
                     settings: CascadeSettings = CascadeSettings(), *, scorer: Scorer | None = None,
                     exclude: Sequence[set[int]] | None = None) -> list[ListingEvidence]:
    """The cascade's evidence for decoded RGB images, one ListingEvidence per image, same order.

    scorer : the index's scorer, whose gate decides which listings get the expensive stages; None only with
        ``settings.force_full`` (a build collecting the evidence its scorer is then fitted on)
    exclude : per image, reference ids hidden from it (a build's synthetic listings), or None; the index's
        disabled references are hidden from every image (``feedback.py``), which also gathers the negative
        examples each listing is near

    BLAS and OpenMP run on one thread meanwhile (``threads.py``: their idle threads would spin on the cores the
    CNN and SIFT need).
    """
    if scorer is None and not settings.force_full:
        raise ValueError("collect_evidence needs the index's scorer for its gate, unless settings.force_full")
    if not images:
        return []
    exclude = hidden_references(refs, exclude, len(images))
    with one_maths_thread():
        raw, windows = embedder.describe_with_windows(list(images))
        vectors, windows = refs.whitening.apply(raw), whiten_windows(refs, windows)
        evidence = _global_stage(refs, vectors, windows, settings, exclude)
        for ev, image in zip(evidence, images):
            ev.image_size = image.size
        if len(refs.likeness):
            for ev, likeness in zip(evidence, refs.likeness.of(raw)):
                ev.likeness = float(likeness)
        doubtful = (list(range(len(images))) if settings.force_full
                    else _gate(refs, scorer, images, evidence, settings))
        _check_doubtful(refs, embedder, images, vectors, evidence, doubtful, settings, exclude)
        add_negative_evidence(refs, images, raw, vectors, evidence, settings)
        for ev, vector, parts, own_raw in zip(evidence, vectors, windows, raw):
            kept = StoredEvidence.of(ev) if ev.verified or ev.dismissed else None
            ev.descriptor = pack_descriptor(vector, parts, ev.region_vectors, own_raw, kept)
    return evidence


def global_stage(refs: ReferenceIndex, vectors: np.ndarray, windows: np.ndarray,
                 settings: CascadeSettings = CascadeSettings(), *,
                 exclude: Sequence[set[int]] | None = None) -> list[ListingEvidence]:
    """The cheap global stage from whitened descriptors: nearest references, prototypes, background similarity
    and window scores, one ListingEvidence per row (no image size, likeness or expensive stage).

    vectors : whitened whole-image descriptors float32 (n, d); windows : whitened feature-map windows
        (n, WINDOWS, d). A re-scan calls it with the float16 descriptors a scan kept (``MatchResult.descriptor``).
    exclude : per row, reference ids hidden from it, or None; the index's disabled references are added here
    """
    return _global_stage(refs, vectors, windows, settings, hidden_references(refs, exclude, len(vectors)))


def _global_stage(refs: ReferenceIndex, vectors: np.ndarray, windows: np.ndarray, settings: CascadeSettings,
                  exclude: Sequence[set[int]] | None) -> list[ListingEvidence]:
    """``global_stage`` with ``exclude`` already holding the disabled references (``collect_evidence`` has it)."""
    evidence = global_evidence(refs, np.asarray(vectors, np.float32), k=settings.candidates, exclude=exclude)
    set_window_scores(refs, evidence, windows, exclude=exclude)
    return evidence


def _gate(refs: ReferenceIndex, scorer: Scorer, images: Sequence[Image.Image], evidence: list[ListingEvidence],
          settings: CascadeSettings) -> list[int]:
    """The positions of the listings that go on to the expensive stages; marks those the gate passes but that
    are unlike the catalog's listings as dismissed (scored by the full models, as if the stages found nothing),
    unless they are made of several photos (``settings.layouts_never_dismissed``)."""
    passed, like = passes_gate(scorer, evidence), alike(scorer, evidence)
    for i in np.flatnonzero(passed & ~like) if settings.verify else []:
        if settings.layouts_never_dismissed and photo_panels(images[i]):
            like[i] = True  # several photos: unlike the catalog as a whole, though one of them may be a copy
            continue
        evidence[i].dismissed = True
        if refs.colour_check:  # its hues are compared (cheap), as for every verified listing
            add_colour_check(refs, images[i], evidence[i])
    return [int(i) for i in np.flatnonzero(passed & like)]


def _check_doubtful(refs: ReferenceIndex, embedder: Embedder, images: Sequence[Image.Image], vectors: np.ndarray,
                    evidence: list[ListingEvidence], doubtful: list[int], settings: CascadeSettings,
                    exclude: Sequence[set[int]] | None) -> None:
    """The expensive stages for the ``doubtful`` listings: SIFT verification of the global candidates, region
    search for those not settled by it, verification of the candidates the regions brought up, colour check."""
    hidden = [hidden_brands_of(refs, exclude[i]) if exclude else frozenset() for i in doubtful]
    # SIFT extraction (OpenCV, releases the GIL) runs in a thread, ahead of the verification of earlier listings
    queries = []  # the doubtful listings' local features
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = ([pool.submit(extract_local_features, images[i], long_side=settings.sift_long_side,
                                max_features=settings.sift_features)
                    for i in doubtful] if settings.verify else [])
        for i, job, brands in zip(doubtful, pending, hidden):
            queries.append(job.result())
            add_verification(refs, queries[-1], evidence[i], settings.verify_top, brands,
                             settings.mirror_unless_inliers)
    unsettled = [k for k, i in enumerate(doubtful) if not settled(evidence[i], settings.settled_inliers)]
    searched = set(unsettled) if settings.regions else set()
    if searched:
        chosen = [doubtful[k] for k in unsettled]
        add_region_evidence(refs, embedder, [images[i] for i in chosen], [evidence[i] for i in chosen],
                            vectors[chosen], grid=settings.region_grid, window=settings.region_size,
                            crops_kept=settings.region_crops_kept,
                            exclude=[exclude[i] for i in chosen] if exclude else None)
        for i in chosen if settings.layout_panels else []:  # a photo one panel of nine is too small for the regions
            panels = photo_panels(images[i])
            if panels:
                add_panel_evidence(refs, embedder, images[i], evidence[i], vectors[i], panels,
                                  exclude=exclude[i] if exclude else None)

    def finish(k: int) -> None:
        """The last stages of the k-th doubtful listing (they only touch its own evidence)."""
        i = doubtful[k]
        if k in searched and settings.verify:  # candidates the regions brought up
            add_verification(refs, queries[k], evidence[i], settings.verify_top, hidden[k],
                             settings.mirror_unless_inliers)
        if settings.verify and refs.colour_check:
            add_colour_check(refs, images[i], evidence[i])

    with ThreadPoolExecutor(max_workers=settings.finish_threads, thread_name_prefix="matcher-finish") as pool:
        list(pool.map(finish, range(len(doubtful))))
