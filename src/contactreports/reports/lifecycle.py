"""Starting a report, running it again, deleting it: the store's change, then the job's enqueueing."""

from __future__ import annotations

import logging

from contactreports.jobs.queue import enqueue_run
from contactreports.models import Account, Report, ReportSpec
from contactreports.reports.errors import ReportNotFound
from contactreports.services import Services
from contactreports.store import reports as store

log = logging.getLogger(__name__)


async def _enqueue_report(services: Services, report: Report) -> None:
    try:
        await enqueue_run(services.redis, services.settings.queue_name, report.account_id, report.id, report.run)
    except Exception:  # Redis is only a transport: the reconciler enqueues queued reports again
        log.warning("could not enqueue report %s run %s; the reconciler will", report.id, report.run, exc_info=True)


async def start_report(services: Services, account: Account, spec: ReportSpec) -> Report:
    """Store a new report and queue its run; raises `store.ActiveReportExists` while the account has
    one queued or processing."""
    report = await store.create_report(services.db, account.id, spec)
    await _enqueue_report(services, report)
    return report


async def restart_report(services: Services, account: Account, report_id: str) -> Report:
    """Queue a new run of a report; raises ReportNotFound, or `store.ActiveReportExists` while the
    account has one queued or processing."""
    report = await store.rerun_report(services.db, account.id, report_id)
    if report is None:
        raise ReportNotFound()
    await _enqueue_report(services, report)
    return report


async def delete_report(services: Services, account: Account, report_id: str) -> None:
    """Delete a report and its rows; raises ReportNotFound."""
    if not await store.delete_report(services.db, account.id, report_id):
        raise ReportNotFound()
