#!/usr/bin/env python3
"""Evaluate a scores CSV (listing,brand,reference,score) against a benchmark folder.

Usage: python scripts/evaluate.py BENCH_DIR SCORES.csv [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from matcher.evaluate import EvaluationError, evaluate_scores_file, format_report  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_dir", help="benchmark folder (ground_truth.csv, references/, queries/)")
    ap.add_argument("scores_csv", help="CSV with columns listing,brand,reference,score")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)
    try:
        metrics = evaluate_scores_file(args.bench_dir, args.scores_csv)
    except EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(metrics) if args.json else format_report(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
