"""Feedback on a benchmark (issue #29): negative examples and a known counterfeit photo, measured.

Usage::

    python scripts/feedback_bench.py BENCH_DIR [--work-dir W]

BENCH_DIR is a benchmark in the devbench layout. Steps (each reuses what ``W`` already holds):

1. build ``W/index`` of ``BENCH_DIR/references`` (default settings) and scan the queries into ``W/base.jsonl``;
2. mark the 10 highest-scoring distractors (queries of kind ``none``) ``false_positive`` for their best brand, and
   one distractor that verifies against no genuine reference (no candidate above chance inliers) ``counterfeit``
   for its best brand; write ``W/decisions.csv``;
3. make variants: each marked distractor re-encoded (JPEG q 60-80) and resized (0.5-0.8x, re-encoded), both
   seeded; the counterfeit photo edited three ways (crop + re-encode, resize + caption band, mirror + re-encode);
4. ``index feedback`` on a copy of the index (``W/index_fb``), then scan queries + variants with both indexes.

Prints: how many of the marked distractors and their variants each index flags for their brand (the target: none
after feedback), the headline metrics of the other queries before / after and their largest move (target: <= 0.005),
the metrics of all 1000 queries, and the counterfeit photo's edited copies: verdict, reference, explanation.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
import random
import shutil
import sys

from PIL import Image, ImageDraw, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher import Matcher, build_index, scan  # noqa: E402
from matcher.building.feedback import feedback_index  # noqa: E402
from matcher.evaluation import HEADLINE_KEYS, evaluate, load_benchmark, normalize_path  # noqa: E402
from matcher.evaluation import score_rows_from_results  # noqa: E402
from matcher.evaluation.metrics import Benchmark  # noqa: E402
from matcher.scan import read_results  # noqa: E402

MARKED = 10
CHANCE_INLIERS = 5  # cascade.evidence.CHANCE_INLIERS: a distractor at or below it verifies against nothing


def scanned(index: Path, source: Path, out: Path) -> list[dict]:
    if not out.exists():
        scan(source, Matcher.open(index), out, top_k=10)
    return read_results(out)


def metrics(bench: Benchmark, rows: list[dict], keep: set[str]) -> dict:
    """Headline metrics over the queries in ``keep`` (paths relative to queries/)."""
    subset = Benchmark(bench.bench_dir, {q: t for q, t in bench.truth.items() if q in keep})
    names = {r["listing"]: normalize_path(r.get("path") or r["listing"], bench.bench_dir, "queries") for r in rows}
    own = [r for r in rows if names[r["listing"]] in keep]
    score_rows = [s._replace(listing=names[s.listing]) for s in score_rows_from_results(own)]
    found = evaluate(subset, score_rows)
    return {k: found[k] for k in HEADLINE_KEYS}


def variants(source: Path, out: Path, rng: random.Random, fake: bool) -> list[Path]:
    """Edited copies of ``source`` in ``out`` (module docstring, step 3)."""
    im = Image.open(source).convert("RGB")
    w, h = im.size
    made = []

    def save(image: Image.Image, tag: str, quality: int) -> None:
        path = out / f"{source.stem}_{tag}.jpg"
        image.save(path, quality=quality)
        made.append(path)
    if not fake:
        save(im, "reencoded", rng.randint(60, 80))
        f = rng.uniform(0.5, 0.8)
        save(im.resize((max(1, int(w * f)), max(1, int(h * f))), Image.BILINEAR), "resized", rng.randint(60, 80))
        return made
    save(im.crop((int(0.06 * w), int(0.04 * h), int(0.94 * w), int(0.9 * h))), "crop", 70)
    f = rng.uniform(0.5, 0.8)
    small = im.resize((int(w * f), int(h * f)), Image.BILINEAR)
    band = ImageDraw.Draw(small)
    band.rectangle((0, int(0.85 * small.height), small.width, small.height), fill=(250, 250, 250))
    band.text((8, int(0.87 * small.height)), "ORIGINAL 100% - FREE SHIPPING", fill=(200, 0, 0))
    save(small, "caption", 75)
    save(ImageOps.mirror(im), "mirror", 65)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench", type=Path, help="benchmark folder in the devbench layout")
    parser.add_argument("--work-dir", type=Path, default=Path("results/feedback_bench"))
    args = parser.parse_args()
    bench_dir, work = args.bench.resolve(), args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    bench = load_benchmark(bench_dir)
    index = work / "index"
    if not (index / "CURRENT").exists():
        build_index(bench_dir / "references", index)
    base = scanned(index, bench_dir / "queries", work / "base.jsonl")
    query = {r["listing"]: normalize_path(r["listing"], str(bench_dir), "queries") for r in base}
    distractors = [r for r in base if r["status"] == "ok" and bench.truth[query[r["listing"]]].kind == "none"]
    distractors.sort(key=lambda r: -(r["score"] or 0))
    negatives = distractors[:MARKED]
    unverified = [r for r in distractors[MARKED:]
                  if r["brand"] and max(m.get("inliers", -1) for m in r["matches"]) <= CHANCE_INLIERS]
    fake = unverified[0]
    with open(work / "decisions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["listing", "brand", "label", "note"])
        for r in negatives:
            writer.writerow([r["listing"], r["brand"], "false_positive", "feedback_bench: top distractor"])
        writer.writerow([fake["listing"], fake["brand"], "counterfeit", "feedback_bench: confirmed fake photo"])
    edited = work / "variants"
    if edited.exists():
        shutil.rmtree(edited)
    edited.mkdir()
    rng = random.Random(1234)
    marked = {}  # variant or marked query path -> (brand, what)
    for r in negatives:
        for p in [Path(r["path"])] + variants(Path(r["path"]), edited, rng, fake=False):
            marked[str(p)] = (r["brand"], "negative")
    fake_copies = variants(Path(fake["path"]), edited, rng, fake=True)
    manifest = work / "queries_and_variants.txt"
    manifest.write_text("".join(f"{p}\n" for p in sorted((bench_dir / "queries").glob("*.jpg")))
                        + "".join(f"{p}\n" for p in sorted(edited.glob("*.jpg"))), encoding="utf-8")
    before = scanned(index, manifest, work / "before.jsonl")
    index_fb = work / "index_fb"
    if not (index_fb / "CURRENT").exists():
        shutil.copytree(index, index_fb)
        feedback_index(index_fb, work / "decisions.csv", base, work / "base.jsonl", progress=print)
    after = scanned(index_fb, manifest, work / "after.jsonl")

    print(f"marked: {len(negatives)} distractors false_positive (+{len(marked) - len(negatives)} variants); "
          f"{fake['listing']} counterfeit for {fake['brand']} (max inliers "
          f"{max(m.get('inliers', -1) for m in fake['matches'])})")
    threshold = evaluate(bench, [s._replace(listing=query[s.listing]) for s in score_rows_from_results(base)])
    threshold = threshold["brand_thr@P90"]
    for name, rows in (("before feedback", before), ("after feedback", after)):
        flagged = [r for r in rows if r["path"] in marked and r["verdict"] in ("copy", "same_product")
                   and r["brand"] == marked[r["path"]][0]]
        scored = [r for r in rows if r["path"] in marked and any(
            m["brand"] == marked[r["path"]][0] and m["score"] >= threshold for m in r.get("matches") or [])]
        print(f"{name}: of {len(marked)} marked distractors and variants, {len(flagged)} flagged (copy or "
              f"same_product) for their brand, {len(scored)} score it at or above brand_thr@P90 {threshold:.3f}")
    # queries made from the same source photo as the counterfeit one reuse that photo: flagged copies are right
    sources = {}
    with open(bench_dir / "manifest.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            sources[normalize_path(row["file"], str(bench_dir), "queries")] = row["source"]
    reposts = {q for q in bench.truth if sources.get(q) == sources.get(query[fake["listing"]])}
    marked_queries = {query[r["listing"]] for r in negatives} | reposts
    print(f"queries of the counterfeit photo's source ({len(reposts)}): "
          + ", ".join(f"{q} {r['verdict']} {r['reference']}" for q in sorted(reposts)
                      for r in after if r["path"] == str(bench_dir / "queries" / q)))
    others = set(bench.truth) - marked_queries
    old, new = metrics(bench, base, others), metrics(bench, after, others)
    print(f"other {len(others)} queries:   " + "  ".join(f"{k} {old[k]:.3f}->{new[k]:.3f}" for k in HEADLINE_KEYS))
    print(f"largest move of another metric: {max(abs(new[k] - old[k]) for k in HEADLINE_KEYS):.4f} (target <= 0.005)")
    everything = set(bench.truth)
    old, new = metrics(bench, base, everything), metrics(bench, after, everything)
    print(f"all {len(everything)} queries: " + "  ".join(f"{k} {old[k]:.3f}->{new[k]:.3f}" for k in HEADLINE_KEYS))
    by_path, was = {r["path"]: r for r in after}, {r["path"]: r for r in before}
    for p in [fake["path"]] + [str(c) for c in fake_copies]:
        r, b = by_path[p], was[p]
        print(f"counterfeit case {Path(p).name}: before {b['verdict']} {b['brand']} {b['score']:.3f}; after "
              f"{r['verdict']} {r['brand']} {r['reference']} {r['score']:.3f} | {r['explanation']}")


if __name__ == "__main__":
    main()
