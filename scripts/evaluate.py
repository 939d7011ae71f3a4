#!/usr/bin/env python3
"""Evaluate a scores CSV (listing,brand,reference,score) against a benchmark folder.

Usage: python scripts/evaluate.py BENCH_DIR SCORES.csv [--json] [--false-positives]

--false-positives also lists the distractors that score at or above the brand P90 threshold (fp_at_p90's).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from matcher.evaluation import EvaluationError, evaluate_scores_file, format_report  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_dir", help="benchmark folder (ground_truth.csv, references/, queries/)")
    ap.add_argument("scores_csv", help="CSV with columns listing,brand,reference,score")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--false-positives", action="store_true",
                    help="also list the distractors scoring at or above the brand P90 threshold")
    args = ap.parse_args(argv)
    try:
        metrics = evaluate_scores_file(args.bench_dir, args.scores_csv, with_false_positives=args.false_positives)
    except EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(metrics) if args.json else format_report(metrics))
    if args.false_positives and not args.json:
        found = metrics["false_positives"]
        print(f"\ndistractors at or above the brand P90 threshold ({metrics['brand_thr@P90']}): {len(found)}")
        for r in found:
            print(f"  {r.score:.3f}  {r.listing}  ->  {r.brand}  ({r.reference})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
