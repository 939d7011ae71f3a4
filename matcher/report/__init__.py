"""Report: a results file (and its index) -> one self-contained HTML page of the suspects, for a reviewer."""
from .write import ReportSummary, write_report

__all__ = ["write_report", "ReportSummary"]
