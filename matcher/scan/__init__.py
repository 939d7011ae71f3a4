"""Scan: the batch loop over listings (reader -> cascade -> writer), results files, ranking and suspicion."""
from .outputs import OutputPathError, check_output
from .rows import result_row
from .runner import ScanSummary, scan
from .writers import RESULT_FIELDS, open_writer, read_results

__all__ = ["scan", "ScanSummary", "result_row", "RESULT_FIELDS", "open_writer", "read_results",
           "check_output", "OutputPathError"]
