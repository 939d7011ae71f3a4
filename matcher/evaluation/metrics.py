"""Benchmark metrics for the matcher (numpy + stdlib only), matching the devbench evaluator.

A benchmark folder holds ``ground_truth.csv`` (query, reference_class, reference_image, kind in
copy / same_product / none), optionally ``manifest.csv`` (``edits`` = edit chain per query file),
``references/<class>/*`` and ``queries/*``.  Scores are ``(listing, brand, reference, score)`` rows,
several per listing allowed; a (listing, brand) or (listing, reference) pair scores its max row.
"""
from __future__ import annotations

from collections import defaultdict
import csv
from dataclasses import dataclass, field
import math
import os
import posixpath
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from matcher.errors import MatcherError
from matcher.evaluation.slices import format_slices, slice_metrics

KINDS = ("copy", "same_product", "none")
METRIC_KEYS = ("brand_uAP", "brand_R@P90", "brand_thr@P90", "copy_uAP", "copy_R@P90", "copy_thr@P90",
               "top1_copy", "top1_same_product", "top1_copy_ref", "fp_at_p90")
# the guide's seven headline metrics, in the order of its tables (ablation and seed-spread scripts print these)
HEADLINE_KEYS = ("brand_uAP", "brand_R@P90", "copy_uAP", "copy_R@P90", "top1_copy", "top1_same_product", "fp_at_p90")
MIN_PRECISION = 0.9


class EvaluationError(MatcherError):
    """A benchmark or scores file is missing or malformed."""

    exit_code = 2


class QueryTruth(NamedTuple):
    kind: str   # copy / same_product / none
    cls: str    # reference class ('' for none)
    ref: str    # reference image relative to references/ ('' unless copy)


class ScoreRow(NamedTuple):
    listing: str
    brand: str
    reference: str
    score: float


@dataclass
class Benchmark:
    """Ground truth of one benchmark folder.

    Attributes
    ----------
    bench_dir : str
        The benchmark folder.
    truth : dict of str to QueryTruth
        Per query, keyed by its path relative to ``queries/``, in ground-truth order.
    main_edits : dict of str to str or None
        Main (first) edit per query from ``manifest.csv``; None when there is no usable manifest.
    references : set of str
        ``<class>/<file>`` of every file under ``references/`` (used for warnings only).
    slices : dict of str to str or None
        Slice per query (optional ``slice`` column of ground_truth.csv); None without it, as on devbench.
    """

    bench_dir: str
    truth: dict
    main_edits: dict | None = None
    references: set = field(default_factory=set)
    slices: dict | None = None

    def queries_of(self, kind: str) -> list[str]:
        return [q for q, t in self.truth.items() if t.kind == kind]


def normalize_path(path: str | None, bench_dir: str, sub: str) -> str:
    """Return `path` relative to ``bench_dir/sub`` with '/' separators ('' for an empty path).

    Accepts paths relative to ``bench_dir/sub`` or ``bench_dir`` and absolute paths inside it.
    """
    p = (path or "").strip().replace("\\", "/")
    if not p:
        return ""
    if os.path.isabs(p):
        root = os.path.abspath(bench_dir).replace("\\", "/").rstrip("/") + "/"
        p = os.path.normpath(p).replace("\\", "/")
        p = p[len(root):] if p.startswith(root) else p
    p = posixpath.normpath(p)
    return p[len(sub) + 1:] if p.startswith(sub + "/") else p


def split_edit_chain(chain: str) -> list[str]:
    """Split an edit chain such as ``"pad(0.2,0.1)+meme('a+b')"`` at top-level '+' signs."""
    parts, start, depth, quote = [], 0, 0, ""
    for i, ch in enumerate(chain):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "()":
            depth = depth + 1 if ch == "(" else max(depth - 1, 0)
        elif ch == "+" and depth == 0:
            parts.append(chain[start:i])
            start = i + 1
    parts.append(chain[start:])
    return [p.strip() for p in parts if p.strip()]


def _read_csv(path: str, need: set, what: str) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rd = csv.DictReader(f)
            cols = [c.strip() for c in rd.fieldnames or []]
            if not need.issubset(cols):
                raise EvaluationError(f"{path}: {what} needs columns {sorted(need)}, got {cols}")
            rd.fieldnames = cols
            return list(rd)
    except OSError as e:
        raise EvaluationError(f"{path}: cannot read {what}: {e}") from None


def load_benchmark(bench_dir) -> Benchmark:
    """Load ground truth, main edits and reference inventory; EvaluationError on a bad ground truth."""
    bench_dir = os.fspath(bench_dir)
    gt_path = os.path.join(bench_dir, "ground_truth.csv")
    if not os.path.isfile(gt_path):
        raise EvaluationError(f"{bench_dir}: no ground_truth.csv (is this a benchmark folder?)")
    truth, slices = {}, {}
    for r in _read_csv(gt_path, {"query", "reference_class", "reference_image", "kind"}, "ground truth"):
        q = normalize_path(r["query"], bench_dir, "queries")
        kind = (r["kind"] or "").strip()
        if kind not in KINDS:
            raise EvaluationError(f"{gt_path}: query {q!r} has unknown kind {kind!r} (expected {KINDS})")
        truth[q] = QueryTruth(kind, (r["reference_class"] or "").strip(),
                              normalize_path(r["reference_image"], bench_dir, "references"))
        if "slice" in r:
            slices[q] = (r["slice"] or "").strip() or "unsliced"
    main_edits, man_path = None, os.path.join(bench_dir, "manifest.csv")
    try:   # no manifest, or one without file/edits columns, just disables the per-edit table
        man_rows = _read_csv(man_path, {"file", "edits"}, "manifest") if os.path.isfile(man_path) else None
    except EvaluationError:
        man_rows = None
    if man_rows is not None:
        main_edits = {}
        for r in man_rows:
            f = (r["file"] or "").replace("\\", "/")
            if f.startswith("queries/"):
                chain = split_edit_chain(r["edits"] or "")
                main_edits[normalize_path(f, bench_dir, "queries")] = (
                    chain[0].split("(", 1)[0].strip() if chain else "unedited")
    ref_dir = os.path.join(bench_dir, "references")
    classes = sorted(os.listdir(ref_dir)) if os.path.isdir(ref_dir) else []
    refs = {f"{c}/{fn}" for c in classes if os.path.isdir(os.path.join(ref_dir, c))
            for fn in os.listdir(os.path.join(ref_dir, c))}
    return Benchmark(bench_dir, truth, main_edits, refs, slices or None)


def _score_row(listing, brand, reference, score, where: str) -> ScoreRow | None:
    brand, reference = (brand or "").strip(), (reference or "").strip()
    if not brand and not reference:
        return None
    try:
        s = float(score)
    except (TypeError, ValueError):
        s = math.nan
    if not math.isfinite(s):
        raise EvaluationError(f"{where}: score {score!r} is not a finite number")
    return ScoreRow(str(listing), brand, reference, s)


def score_rows_from_results(results: Iterable[Mapping]) -> list[ScoreRow]:
    """Turn scan result rows into score rows: one per entry of ``matches`` (else the top row).

    Rows whose status is not ``ok`` give none, as do candidates with neither brand nor reference
    (a candidate with only a reference is kept; :func:`evaluate` takes its class folder as brand).
    """
    out = []
    for res in results:
        if res.get("status", "ok") != "ok":
            continue
        listing = res.get("listing", "")
        for cand in res.get("matches") or [res]:
            row = _score_row(listing, cand.get("brand"), cand.get("reference"), cand.get("score"),
                             f"result for {listing!r}")
            if row is not None:
                out.append(row)
    return out


def read_scores_csv(path) -> list[ScoreRow]:
    """Read a ``listing,brand,reference,score`` CSV (extra columns ignored)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EvaluationError(f"{path}: scores file not found")
    rows = []
    for i, r in enumerate(_read_csv(path, {"listing", "brand", "reference", "score"}, "scores"), 2):
        row = _score_row(r["listing"], r["brand"], r["reference"], (r["score"] or "").strip(), f"{path}:{i}")
        if row is None:
            raise EvaluationError(f"{path}:{i}: row has neither brand nor reference")
        rows.append(row)
    return rows


def write_scores_csv(rows: Iterable[ScoreRow], path) -> None:
    """Write score rows as ``listing,brand,reference,score`` (full float precision)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["listing", "brand", "reference", "score"])
        for r in rows:
            w.writerow([r.listing, r.brand, r.reference, repr(float(r.score))])


def ranked_metrics(scores, labels, n_pos: int, min_precision: float = MIN_PRECISION) -> dict:
    """Micro AP and recall at `min_precision` of scored pairs.

    Parameters
    ----------
    scores, labels : array_like
        One score and one is-positive flag per predicted pair.
    n_pos : int
        Number of positives overall, including never-predicted ones (counted as misses).

    Returns
    -------
    dict
        ``ap`` (ties ranked negatives first); ``recall``, the max recall over distinct score
        thresholds with precision >= `min_precision`; ``threshold``, the highest such one or None.
    """
    if n_pos <= 0:
        return {"ap": math.nan, "recall": math.nan, "threshold": None}
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.size == 0:
        return {"ap": 0.0, "recall": 0.0, "threshold": None}
    order = np.lexsort((y, -s))            # score descending, False (negative) before True
    s, y = s[order], y[order]
    hits = np.cumsum(y)
    precision = hits / np.arange(1, s.size + 1)
    ap = float(precision[y].sum() / n_pos)
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))   # last row of each score group
    recall = hits[ends] / n_pos
    ok = precision[ends] >= min_precision
    if not ok.any():
        return {"ap": ap, "recall": 0.0, "threshold": None}
    best = int(np.argmax(np.where(ok, recall, -1.0)))
    return {"ap": ap, "recall": float(recall[best]), "threshold": float(s[ends[best]])}


def _top1_right(cands: dict | None, right: str) -> bool:
    if not cands or not right:
        return False
    top = max(cands.values())
    return {k for k, v in cands.items() if v == top} == {right}


def _mean(flags: list) -> float:
    return float(np.mean(flags)) if flags else math.nan


def evaluate(bench: Benchmark, rows: Sequence[ScoreRow], *, operating_threshold: float | None = None) -> dict:
    """Compute all metrics of `rows` against `bench`.

    Parameters
    ----------
    bench : Benchmark
    rows : sequence of ScoreRow
        Listings not among the benchmark's queries raise EvaluationError; absent queries are misses.
    operating_threshold : float, optional
        The index's verdict threshold (``matcher eval`` passes it); slice rows also count recall and fp at it.

    Returns
    -------
    dict
        n_queries (per kind), n_rows, brand_uAP, brand_R@P90, brand_thr@P90, copy_uAP, copy_R@P90,
        copy_thr@P90, top1_copy, top1_same_product, top1_copy_ref, fp_at_p90, per_edit
        ({edit: {n, top1_brand, top1_ref}} over copy queries, or None) and warnings; with slices also
        slice_thresholds and per_slice (:func:`~matcher.evaluation.slices.slice_metrics`).
    """
    brand_of, ref_of, best = defaultdict(dict), defaultdict(dict), {}
    unknown, bad_brands, bad_refs = [], set(), set()
    classes = {r.split("/")[0] for r in bench.references}
    for r in rows:
        q = normalize_path(r.listing, bench.bench_dir, "queries")
        if q not in bench.truth:
            unknown.append(r.listing)
            continue
        ref = normalize_path(r.reference, bench.bench_dir, "references")
        brand = r.brand or ref.split("/")[0]   # a row with only a reference names its class folder
        for pairs, key in ((brand_of, brand), (ref_of, ref)):
            if key and r.score > pairs[q].get(key, -math.inf):
                pairs[q][key] = r.score
        best[q] = max(best.get(q, -math.inf), r.score)
        if classes and brand not in classes:
            bad_brands.add(brand)
        if ref and bench.references and ref not in bench.references:
            bad_refs.add(ref)
    if unknown:
        raise EvaluationError(f"{len(unknown)} score row(s) name listings that are not queries of "
                              f"{bench.bench_dir} (e.g. {unknown[:3]}); use paths like 'q00001.jpg' "
                              "or 'queries/q00001.jpg'")
    truth, kinds = bench.truth, {k: bench.queries_of(k) for k in KINDS}
    warnings = []
    if bad_brands:
        warnings.append(f"{len(bad_brands)} brand(s) not among the reference classes (scored as "
                        f"negatives), e.g. {sorted(bad_brands)[:3]}")
    if bad_refs:
        warnings.append(f"{len(bad_refs)} reference path(s) not found under references/ (scored as "
                        f"negatives), e.g. {sorted(bad_refs)[:3]}")
    if len(best) < len(truth):
        warnings.append(f"{len(truth) - len(best)} of {len(truth)} queries have no rows (counted as misses)")

    b = [(s, truth[q].kind != "none" and k == truth[q].cls)
         for q, d in brand_of.items() for k, s in d.items()]
    c = [(s, truth[q].kind == "copy" and k == truth[q].ref) for q, d in ref_of.items()
         if truth[q].kind != "same_product" for k, s in d.items()]
    bm = ranked_metrics([x[0] for x in b], [x[1] for x in b], len(kinds["copy"]) + len(kinds["same_product"]))
    cm = ranked_metrics([x[0] for x in c], [x[1] for x in c], len(kinds["copy"]))
    if not any(ref_of.values()):
        warnings.append("no row has a reference image: copy metrics are 0")

    top1_brand = {q: _top1_right(brand_of.get(q), t.cls) for q, t in truth.items()}
    top1_ref = {q: _top1_right(ref_of.get(q), truth[q].ref) for q in kinds["copy"]}
    thr = bm["threshold"]
    fp90 = None if thr is None else _mean([q in best and best[q] >= thr for q in kinds["none"]])

    per_edit = None
    if bench.main_edits is not None:
        groups = defaultdict(list)
        for q in kinds["copy"]:
            groups[bench.main_edits.get(q, "unknown")].append(q)
        per_edit = {e: {"n": len(qs), "top1_brand": _mean([top1_brand[q] for q in qs]),
                        "top1_ref": _mean([top1_ref[q] for q in qs])}
                    for e, qs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))}
    result = {
        "n_queries": {k: len(v) for k, v in kinds.items()}, "n_rows": len(rows),
        "brand_uAP": bm["ap"], "brand_R@P90": bm["recall"], "brand_thr@P90": thr,
        "copy_uAP": cm["ap"], "copy_R@P90": cm["recall"], "copy_thr@P90": cm["threshold"],
        "top1_copy": _mean([top1_brand[q] for q in kinds["copy"]]),
        "top1_same_product": _mean([top1_brand[q] for q in kinds["same_product"]]),
        "top1_copy_ref": _mean([top1_ref[q] for q in kinds["copy"]]),
        "fp_at_p90": fp90, "per_edit": per_edit, "warnings": warnings,
    }
    result.update(slice_metrics(bench.slices, truth, brand_of, best, top1_brand, thr, operating_threshold))
    return result


def false_positives(bench: Benchmark, rows: Sequence[ScoreRow], threshold: float) -> list[ScoreRow]:
    """The best row of each distractor (``none`` query) scoring at least ``threshold`` (e.g. the metrics'
    ``brand_thr@P90``), highest first: the look-alikes that reach the operating point."""
    best: dict[str, ScoreRow] = {}
    for r in rows:
        q = normalize_path(r.listing, bench.bench_dir, "queries")
        truth = bench.truth.get(q)
        if truth is not None and truth.kind == "none" and r.score >= threshold and \
                (q not in best or r.score > best[q].score):
            best[q] = r._replace(listing=q)
    return sorted(best.values(), key=lambda r: (-r.score, r.listing))


def evaluate_scores_file(bench_dir, scores_csv, *, with_false_positives: bool = False) -> dict:
    """Evaluate a ``listing,brand,reference,score`` CSV against a benchmark folder; ``with_false_positives`` adds
    ``false_positives``: :func:`false_positives` at ``brand_thr@P90`` ([] when there is no such threshold)."""
    bench, rows = load_benchmark(bench_dir), read_scores_csv(scores_csv)
    res = evaluate(bench, rows)
    if with_false_positives:
        threshold = res["brand_thr@P90"]
        res["false_positives"] = [] if threshold is None else false_positives(bench, rows, threshold)
    return {"bench": os.path.abspath(bench_dir), "scores": os.path.abspath(scores_csv), **res}


def _fmt(x) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4f}"
    return "n/a" if x is None else str(x)


def format_report(metrics: dict) -> str:
    """Render `metrics` (from :func:`evaluate`) as a plain-text table with a per-edit breakdown."""
    lines = [f"{k}: {metrics[k]}" for k in ("bench", "scores") if metrics.get(k)]
    nq = metrics.get("n_queries") or {}
    lines.append(f"{metrics.get('n_rows', 0)} score rows; queries: "
                 + ", ".join(f"{k}={v}" for k, v in nq.items()))
    lines += [f"warning: {w}" for w in metrics.get("warnings", [])]
    width = max(len(k) for k in METRIC_KEYS)
    lines.append("-" * (width + 12))
    lines += [f"{k:<{width}}  {_fmt(metrics.get(k)):>8}" for k in METRIC_KEYS]
    lines.append("-" * (width + 12))
    pe = metrics.get("per_edit")
    if pe:
        ew = max(4, *(len(e) for e in pe))
        lines.append("copy queries by main (first) edit:")
        lines.append(f"  {'edit':<{ew}}  {'n':>4}  {'top1_brand':>10}  {'top1_ref':>8}")
        lines += [f"  {e:<{ew}}  {d['n']:>4}  {_fmt(d['top1_brand']):>10}  {_fmt(d['top1_ref']):>8}"
                  for e, d in pe.items()]
    lines += format_slices(metrics["per_slice"], metrics["slice_thresholds"], _fmt) if metrics.get("per_slice") else []
    return "\n".join(lines)
