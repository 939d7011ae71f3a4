"""Per-slice rows of a benchmark whose ``ground_truth.csv`` has a ``slice`` column (e.g. #28's grid, collage and
faded listings from ``scripts/make_hard_slices.py``): each slice's top-1 brand, and its recall and false
positives at the operating points. A benchmark without the column (devbench) gets no such rows."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np


def _share(flags: list) -> float:
    return float(np.mean(flags)) if flags else math.nan


def slice_metrics(slices: Mapping[str, str] | None, truth: Mapping, brand_of: Mapping[str, dict],
                  best: Mapping[str, float], top1_brand: Mapping[str, bool], p90: float | None,
                  operating: float | None = None) -> dict:
    """``{}`` without slices (devbench's metrics keep their keys), else ``slice_thresholds`` (``{"p90": p90}``, plus
    ``"operating"`` when given: the index's verdict threshold) and ``per_slice`` (:func:`per_slice_metrics`)."""
    if slices is None:
        return {}
    points = {"p90": p90, **({} if operating is None else {"operating": operating})}
    return {"slice_thresholds": points,
            "per_slice": per_slice_metrics(truth, slices, brand_of, best, top1_brand, points)}


def per_slice_metrics(truth: Mapping, slices: Mapping[str, str], brand_of: Mapping[str, dict],
                      best: Mapping[str, float], top1_brand: Mapping[str, bool],
                      thresholds: Mapping[str, float | None]) -> dict:
    """Metrics of each slice, sorted by slice name.

    Parameters
    ----------
    truth : query -> QueryTruth (kind, cls, ref)
    slices : query -> slice name
    brand_of : query -> {brand: best score of the (query, brand) pair}
    best : query -> best score of any of its rows (absent: the query has no rows)
    top1_brand : query -> whether its best brand is its class alone
    thresholds : operating point name -> brand-score threshold (None: no such point, e.g. precision never reaches
        0.9), e.g. ``{"p90": brand_thr@P90}`` and the index's ``{"operating": 0.5}``

    Returns
    -------
    dict
        slice -> {n (copy and same_product queries), top1_brand, n_none, and per threshold name ``recall_at_NAME``
        (share of the slice's positives whose true brand scores >= the threshold; 0.0 with no threshold, as
        brand_R@P90) and ``fp_at_NAME`` (share of its ``none`` queries whose best row scores >= it; None with no
        threshold)}; rates over no queries are nan.
    """
    groups: dict[str, list] = {}
    for q, name in slices.items():
        groups.setdefault(name, []).append(q)
    out = {}
    for name, queries in sorted(groups.items()):
        positives = [q for q in queries if truth[q].kind != "none"]
        nones = [q for q in queries if truth[q].kind == "none"]
        row = {"n": len(positives), "top1_brand": _share([top1_brand[q] for q in positives]), "n_none": len(nones)}
        for point, thr in thresholds.items():
            row[f"recall_at_{point}"] = (0.0 if positives else math.nan) if thr is None else \
                _share([brand_of.get(q, {}).get(truth[q].cls, -math.inf) >= thr for q in positives])
            row[f"fp_at_{point}"] = None if thr is None else _share([best.get(q, -math.inf) >= thr for q in nones])
        out[name] = row
    return out


def format_slices(per_slice: Mapping[str, dict], thresholds: Mapping[str, float | None], fmt) -> list[str]:
    """The per-slice table's lines (``fmt`` renders a number as the report's other rows do)."""
    points = ", ".join(f"{p} = {fmt(t)}" for p, t in thresholds.items())
    width = max(5, *(len(s) for s in per_slice))
    head = f"  {'slice':<{width}}  {'n':>4}  {'top1_brand':>10}"
    for p in thresholds:
        head += f"  {'recall@' + p:>{max(9, len(p) + 7)}}"
    head += f"  {'n_none':>6}" + "".join(f"  {'fp@' + p:>{max(9, len(p) + 3)}}" for p in thresholds)
    lines = [f"queries by slice (ground_truth.csv slice; brand-score thresholds: {points}):", head]
    for name, d in per_slice.items():
        line = f"  {name:<{width}}  {d['n']:>4}  {fmt(d['top1_brand']):>10}"
        for p in thresholds:
            line += f"  {fmt(d[f'recall_at_{p}']):>{max(9, len(p) + 7)}}"
        line += f"  {d['n_none']:>6}" + "".join(f"  {fmt(d[f'fp_at_{p}']):>{max(9, len(p) + 3)}}" for p in thresholds)
        lines.append(line)
    return lines
