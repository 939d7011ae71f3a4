"""Try scorer settings in seconds: refit the calibrated scorer on cached evidence and rescore a benchmark.

Usage::

    python scripts/scorer_lab.py WORK_DIR [WORK_DIR ...] [--sister-weight 8 16 32] [--l2 1] [--any-sign]

Each WORK_DIR is what ``matcher eval --work-dir`` (or ``scripts/holdout_bench.py``, one per variant) left: an
``index/`` built from a benchmark's ``references/``, the benchmark being the folder above it. The first run
collects, once, the evidence of the build's synthetic listings (remade from the index's build settings: the same
seed gives the same listings) and of the benchmark's queries (default cascade, with the index's own gate) and
caches it in ``WORK_DIR/scorer_lab.pkl`` (~5 MB; delete it after changing the engine). Then, for every
combination of the settings given, it refits the scorer (``building.training_rows`` + ``fit_scorer``; the gate
stays the index's), rescores the queries and prints the guide's metrics per work dir and their mean.

A full rebuild and scan takes minutes per benchmark; this takes seconds, so a scorer idea can be screened on
several build seeds or held-out variants at once. Confirm what it finds with a real build (``seed_spread.py``).
"""
from __future__ import annotations

import argparse
from dataclasses import replace
import itertools
import json
from pathlib import Path
import pickle
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher import BuildSettings, CascadeSettings, Matcher  # noqa: E402
from matcher.building import fit_scorer, synthetic_listings, training_rows  # noqa: E402
from matcher.cascade import collect_evidence, score_evidence  # noqa: E402
from matcher.evaluation import HEADLINE_KEYS, ScoreRow, evaluate, load_benchmark  # noqa: E402
from matcher.inputs import decode_catalog_images, iter_listings, load_image, scan_catalog  # noqa: E402

CACHE = "scorer_lab.pkl"


def benchmark_of(matcher: Matcher) -> Path:
    """The benchmark folder whose references/ the index was built from (its manifest records the catalog)."""
    return Path(matcher.version.manifest["catalog"]).parent


def collect(work_dir: Path, matcher: Matcher, batch: int = 32) -> dict:
    """Evidence of the build's synthetic listings and of the benchmark's queries; cached in WORK_DIR/CACHE.

    matcher : ``Matcher.open(work_dir / "index")``"""
    cache = work_dir / CACHE
    if cache.exists():
        with open(cache, "rb") as f:
            return pickle.load(f)
    version, bench = matcher.version, benchmark_of(matcher)
    fields = set(BuildSettings.__dataclass_fields__)
    settings = BuildSettings(**{k: v for k, v in version.manifest["build_settings"].items() if k in fields})
    items, images, _ = decode_catalog_images(bench / "references", scan_catalog(bench / "references"))
    if [i.path for i in items] != [r.path for r in version.refs.references]:
        raise SystemExit(f"scorer_lab: {bench}/references changed since {work_dir}/index was built; rebuild it")
    listings = synthetic_listings(images, version.refs.references, settings)
    calibration = collect_evidence(version.refs, matcher.embedder, [s.image for s in listings],
                                   CascadeSettings(force_full=True), exclude=[set(s.exclude) for s in listings])
    queries = list(iter_listings(bench / "queries"))
    evidence = []
    for start in range(0, len(queries), batch):
        chunk = [load_image(item.path) for item in queries[start:start + batch]]
        evidence += collect_evidence(version.refs, matcher.embedder, chunk, matcher.settings, scorer=version.scorer)
    for ev in calibration + evidence:
        ev.verification = {}  # the inlier coordinates are only drawn in reports
    data = {"listings": [replace(s, image=None) for s in listings], "calibration": calibration,
            "queries": [item.listing for item in queries], "evidence": evidence}
    with open(cache, "wb") as f:
        pickle.dump(data, f)
    return data


def rescore(matcher: Matcher, data: dict, *, sister_weight: float, l2: float, colour_signs: bool) -> dict:
    """Metrics of the benchmark's queries under a scorer refitted with these settings (the index's gate kept)."""
    version, built = matcher.version, matcher.version.scorer
    rows = training_rows(data["calibration"], data["listings"], sister_weight=sister_weight)
    scorer, _ = fit_scorer(rows, l2=l2, colour_signs=colour_signs)
    scorer = replace(scorer, gate=built.gate, gate_threshold=built.gate_threshold)
    scores = [ScoreRow(name, m.brand, m.reference, m.score)
              for name, ev in zip(data["queries"], data["evidence"])
              for m in score_evidence(version.refs, scorer, ev).matches[:10]]
    return evaluate(load_benchmark(benchmark_of(matcher)), scores)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work_dirs", type=Path, nargs="+", help="matcher eval work folders (index/ inside)")
    ap.add_argument("--sister-weight", type=float, nargs="+", default=[16.0])
    ap.add_argument("--l2", type=float, nargs="+", default=[1.0], help="L2 penalty of the logistic models")
    ap.add_argument("--any-sign", action="store_true", help="also fit without the colour weights' sign constraints")
    ap.add_argument("--json", action="store_true", help="one JSON object per line instead of the table")
    args = ap.parse_args(argv)
    for work_dir in args.work_dirs:
        if not (work_dir / "index" / "CURRENT").exists():
            ap.error(f"{work_dir}: no index/ (run `matcher eval BENCH --work-dir {work_dir}` first)")
    matchers = {w: Matcher.open(w / "index") for w in args.work_dirs}
    data = {w: collect(w, matchers[w]) for w in args.work_dirs}
    signs = [True, False] if args.any_sign else [True]
    if not args.json:
        print(f"{'setting':<28}{'work dir':<24}" + "".join(f"{k:>19}" for k in HEADLINE_KEYS), flush=True)
    for weight, l2, colour_signs in itertools.product(args.sister_weight, args.l2, signs):
        label = f"sister {weight:g}, l2 {l2:g}" + ("" if colour_signs else ", any sign")
        table = []
        for w in args.work_dirs:
            metrics = rescore(matchers[w], data[w], sister_weight=weight, l2=l2, colour_signs=colour_signs)
            table.append([float(metrics[k]) for k in HEADLINE_KEYS])
            if args.json:
                print(json.dumps({"setting": label, "work_dir": str(w), **dict(zip(HEADLINE_KEYS, table[-1]))}))
            else:
                print(f"{label:<28}{str(w)[-23:]:<24}" + "".join(f"{v:>19.3f}" for v in table[-1]), flush=True)
        if len(table) > 1 and not args.json:
            print(f"{label:<28}{'mean':<24}" + "".join(f"{v:>19.3f}" for v in np.mean(table, axis=0)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
