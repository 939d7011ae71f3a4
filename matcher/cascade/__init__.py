"""Cascade: match a batch of decoded listings against a loaded index version.

search (global descriptors, prototypes, feature-map windows) -> gate -> verification (SIFT, colour) and regions
for the listings in doubt -> scoring (calibrated models, verdict). ``Matcher`` holds one index version and its
embedder; ``run_cascade`` is the same for a caller that holds them itself.
"""
from .evidence import Candidate, ListingEvidence
from .gate import gate_margin, passes_gate
from .matcher import ImageInput, Matcher, load_embedder_for
from .regions import add_region_evidence
from .run import collect_evidence, global_stage, run_cascade
from .scoring import VERDICT_COPY, VERDICT_NO_MATCH, VERDICT_SAME_PRODUCT, Match, MatchResult, score_evidence
from .feedback import score_with_feedback
from .search import add_window_similarity, global_evidence, whiten_windows
from .settings import CascadeSettings
from .verification import add_colour_check, add_verification

__all__ = ["Matcher", "MatchResult", "Match", "ImageInput", "CascadeSettings", "load_embedder_for", "run_cascade",
           "collect_evidence", "score_evidence", "score_with_feedback", "Candidate", "ListingEvidence", "VERDICT_COPY",
           "VERDICT_SAME_PRODUCT", "VERDICT_NO_MATCH",
           # the stages one by one, in cascade order (``run.collect_evidence`` chains them), for profiling
           "global_evidence", "add_window_similarity", "passes_gate", "add_region_evidence", "add_verification",
           "add_colour_check",
           # the global stage again from a scan's stored descriptors (scan.rescan)
           "global_stage", "gate_margin", "whiten_windows"]
