"""Synthetic listings made from the catalog itself, to fit whitening and the calibrated scorer at index build.

No labelled listing is ever needed: the labels come from how each synthetic listing was made.

- ``copy``: an edited copy of reference r (crop, overlay, screenshot, collage, ...) -> brand of r positive,
  reference r is the copied photo;
- ``same_product``: reference r with light listing edits, searched with r itself hidden -> its brand's other
  photos play "another photo of the product" (brand positive, no copied photo);
- ``sister``: an edited reference searched with its whole brand hidden -> every candidate is a look-alike of
  another brand, the hardest kind of negative (sister products that share logos or shapes, or a product the
  catalog lacks that looks like one it has); the scorer counts each ``BuildSettings.sister_weight`` times;
- ``recoloured``: a reference with its hues turned, searched with that photo hidden -> the brand's other photos
  verify on the same logo and carton, but the colours differ: a negative, like a sister product in another colour
  (``features.colour``);
- ``background``: everyday photos (crops, edits) -> every candidate negative.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from PIL import Image
import numpy as np

from . import augment, edits
from ..cascade.evidence import (GLOBAL_BRAND_FEATURES, GLOBAL_COPY_FEATURES, brand_feature_rows, brand_feature_signs,
                                copy_feature_rows)
from ..cascade.gate import alike, fit_gate, gate_features, passes_gate
from ..index.likeness import ListingLikeness, fit_threshold
from ..index.scorer import Scorer, fit_logistic


@dataclass(frozen=True)
class SyntheticListing:
    """A generated listing and the truth about it. ``exclude``: reference ids hidden from its search."""

    image: Image.Image
    kind: str  # copy / same_product / sister / recoloured / background
    brand: str
    ref_id: int  # the copied reference for kind == copy, else -1
    exclude: frozenset[int]
    photo: int = -1  # for kind == background, the everyday photo it was cut from (its index), else -1


def make_listings(images: Sequence[Image.Image], brands: Sequence[str], ids: Sequence[int],
                  backgrounds: Sequence[Image.Image], rng: np.random.Generator, *,
                  copies_per_reference: int, background_count: int,
                  recoloured_share: float) -> list[SyntheticListing]:
    """Synthetic listings for references (images[i] has brand brands[i] and id ids[i]).

    recoloured_share : the share of references (of brands with more than one) that give a ``recoloured`` listing
    """
    ids_of_brand: dict[str, set[int]] = {}
    for b, i in zip(brands, ids):
        ids_of_brand.setdefault(b, set()).add(i)
    out: list[SyntheticListing] = []
    for image, brand, ref_id in zip(images, brands, ids):
        for _ in range(copies_per_reference):
            edited, _ = augment.copy_edit(image, rng, backgrounds)
            out.append(SyntheticListing(edited, "copy", brand, ref_id, frozenset()))
        if len(ids_of_brand[brand]) > 1:
            edited, _ = augment.listing_edit(image, rng)
            out.append(SyntheticListing(edited, "same_product", brand, -1, frozenset({ref_id})))
        if rng.random() < 0.5:
            edited, _ = augment.copy_edit(image, rng, backgrounds)
        else:
            edited, _ = augment.listing_edit(image, rng)
        out.append(SyntheticListing(edited, "sister", brand, -1, frozenset(ids_of_brand[brand])))
    for _ in range(background_count):
        source = int(rng.integers(len(backgrounds)))
        photo = edits.random_crop(backgrounds[source], rng)
        if rng.random() < 0.5:
            photo, _ = augment.copy_edit(photo, rng, backgrounds)
        out.append(SyntheticListing(edits.finish(photo), "background", "", -1, frozenset(), source))
    for image, brand, ref_id in zip(images, brands, ids):  # last, so the listings above do not depend on it
        if len(ids_of_brand[brand]) > 1 and rng.random() < recoloured_share:
            edited, _ = augment.recoloured(image, rng)
            out.append(SyntheticListing(edited, "recoloured", brand, -1, frozenset({ref_id})))
    return out


def training_rows(evidence, listings: Sequence[SyntheticListing], *,
                  sister_weight: float) -> dict[str, np.ndarray]:
    """Feature rows, labels and row weights from cascade evidence (collected with every stage forced on).

    Returns brand_x (m, F_b), brand_y (m,), brand_w (m,), copy_x (k, F_c), copy_y (k,), copy_w (k,); a row's
    weight is its listing's: ``sister_weight`` for sister listings, else 1.
    """
    brand_x, brand_y, brand_w, copy_x, copy_y, copy_w = [], [], [], [], [], []
    for ev, listing in zip(evidence, listings):
        weight = sister_weight if listing.kind == "sister" else 1.0
        brands, _, bx = brand_feature_rows(ev)
        positive_brand = listing.brand if listing.kind in ("copy", "same_product") else None
        brand_x.append(bx)
        brand_y.extend(b == positive_brand for b in brands)
        brand_w.extend([weight] * len(brands))
        ref_ids, cx = copy_feature_rows(ev)
        copy_x.append(cx)  # another photo of the product is not a copy of any reference
        copy_y.extend(listing.kind == "copy" and r == listing.ref_id for r in ref_ids)
        copy_w.extend([weight] * len(ref_ids))
    return {
        "brand_x": np.vstack(brand_x), "brand_y": np.asarray(brand_y, bool), "brand_w": np.asarray(brand_w),
        "copy_x": np.vstack(copy_x), "copy_y": np.asarray(copy_y, bool), "copy_w": np.asarray(copy_w),
    }


def fit_scorer(rows: dict[str, np.ndarray], *, l2: float = 1.0, colour_signs: bool = True) -> tuple[Scorer, dict]:
    """Fit the four logistic models; returns the scorer and a summary for the manifest.

    colour_signs : the full brand model's colour features keep their known signs
        (``cascade.evidence.BRAND_FEATURE_SIGNS``)
    """
    bx, by, bw = rows["brand_x"], rows["brand_y"], rows["brand_w"]
    cx, cy, cw = rows["copy_x"], rows["copy_y"], rows["copy_w"]
    brand_global = fit_logistic(bx, by, n_features=GLOBAL_BRAND_FEATURES, l2=l2, sample_weight=bw)
    brand_full = fit_logistic(bx, by, l2=l2, sample_weight=bw, signs=brand_feature_signs() if colour_signs else None)
    copy_global = fit_logistic(cx, cy, n_features=GLOBAL_COPY_FEATURES, l2=l2, sample_weight=cw)
    copy_full = fit_logistic(cx, cy, l2=l2, sample_weight=cw)
    # gate: the global score that 98% of true brand rows reach, but never above 0.1
    positives = brand_global.predict(bx[by])
    gate = float(min(0.1, np.quantile(positives, 0.02))) if len(positives) else 0.02
    scorer = Scorer(brand_global, brand_full, copy_global, copy_full, threshold=0.5, verify_gate=gate)
    summary = {"brand_rows": int(len(by)), "brand_positives": int(by.sum()),
               "copy_rows": int(len(cy)), "copy_positives": int(cy.sum()), "verify_gate": gate}
    return scorer, summary


def source_references(listing: SyntheticListing) -> set[int]:
    """The reference ids a synthetic listing was made from, or stands in for (all of a sister's brand)."""
    return {listing.ref_id} if listing.kind == "copy" else set(listing.exclude)


def catalog_likeness(listings: Sequence[SyntheticListing], raw: np.ndarray) -> ListingLikeness:
    """The ``index.likeness`` set of a build: the raw descriptors (m, D) of its copy and same-product listings."""
    keep = [k for k, s in enumerate(listings) if s.kind in ("copy", "same_product")]
    return ListingLikeness(np.asarray(raw, np.float32)[keep],
                           np.asarray([min(source_references(listings[k])) for k in keep], np.int64))


def add_gate(scorer: Scorer, evidence, listings: Sequence[SyntheticListing], *, gate_recall: float,
             likeness_recall: float) -> tuple[Scorer, dict]:
    """Fit the cascade's gate (``cascade.gate``) on the synthetic listings' evidence (every stage forced on).

    A listing is worth the expensive stages when it shows a catalog brand (copy or same_product) and the full
    models give that brand a score at or above the operating threshold. The likeness threshold is fitted too when
    every listing's ``likeness`` was measured (leaving out the listings made from its own references:
    ``source_references``).
    """
    worth = []
    for ev, listing in zip(evidence, listings):
        brands, _, brand_x = brand_feature_rows(ev)
        if listing.kind not in ("copy", "same_product") or listing.brand not in brands:
            worth.append(False)
            continue
        row = brand_x[[brands.index(listing.brand)]]
        worth.append(bool(scorer.brand_full.predict(row)[0] >= scorer.threshold))
    worth = np.asarray(worth, bool)
    features = gate_features(scorer, evidence)
    model, threshold = fit_gate(features, worth, recall=gate_recall)
    measured = [ev.likeness for ev in evidence]
    likeness_threshold = (None if None in measured
                          else fit_threshold(np.asarray(measured), worth, recall=likeness_recall))
    scorer = replace(scorer, gate=model, gate_threshold=threshold, likeness_threshold=likeness_threshold)
    passed = passes_gate(scorer, evidence) & alike(scorer, evidence)
    summary = {"gate_threshold": threshold, "gate_recall": gate_recall, "gate_positives": int(worth.sum()),
               "likeness_threshold": likeness_threshold, "likeness_recall": likeness_recall,
               "gate_kept_positives": float(passed[worth].mean()) if worth.any() else None,
               "gate_pass_rate_negatives": float(passed[~worth].mean()) if (~worth).any() else None}
    return scorer, summary
