"""Evaluation: accuracy on a benchmark in the devbench layout (``matcher eval``), with devbench's metrics."""
from .benchmark import run_benchmark
from .metrics import (HEADLINE_KEYS, EvaluationError, ScoreRow, evaluate, evaluate_scores_file, false_positives,
                      format_report, load_benchmark, normalize_path, read_scores_csv, score_rows_from_results,
                      write_scores_csv)

__all__ = ["run_benchmark", "evaluate", "evaluate_scores_file", "false_positives", "load_benchmark",
           "format_report", "read_scores_csv", "write_scores_csv", "score_rows_from_results", "ScoreRow",
           "HEADLINE_KEYS", "EvaluationError", "normalize_path"]
