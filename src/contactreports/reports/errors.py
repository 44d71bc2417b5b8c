"""Why a report use case refuses, besides invalid input (`models.InvalidFields`), a report already
active (`store.reports.ActiveReportExists`) and an export too large (`exports.ExportTooLarge`)."""

from __future__ import annotations


class ReportNotFound(Exception):
    """No such report: never made, deleted, or another account's."""

    def __init__(self) -> None:
        super().__init__("No such report.")


class ReportNotReady(Exception):
    """The report's rows cannot be read now (not done yet, or re-run or deleted while read): the
    message says which, and what to do."""
