"""Scan: the batch loop over listings (reader -> cascade -> writer), results files, ranking and suspicion."""
from .clusters import ClusterSettings, find_clusters
from .history import History, read_history
from .outputs import OutputPathError, check_output
from .rescan import RescanSettings, RescanSummary, rescan
from .rows import audit_fields, result_row
from .runner import ScanSummary, scan
from .writers import RESULT_FIELDS, open_writer, read_results

__all__ = ["scan", "ScanSummary", "result_row", "RESULT_FIELDS", "open_writer", "read_results",
           "check_output", "OutputPathError", "audit_fields",
           # clusters of near-duplicate listings, descriptors kept beside results, re-scans of history
           "find_clusters", "ClusterSettings", "read_history", "History", "rescan", "RescanSummary",
           "RescanSettings"]
