"""Putting report runs on the arq queue (used by the API and by the reconciler)."""

from __future__ import annotations

from arq.connections import ArqRedis

GENERATE_REPORT = "generate_report"


def job_id(report_id: str, run: int) -> str:
    """One id per (report, run): arq drops a duplicate enqueue of the same run, and a rerun
    never collides with the old run's result key or a leftover abort mark."""
    return f"report:{report_id}:run:{run}"


async def enqueue_run(redis: ArqRedis, queue_name: str, account_id: int, report_id: str, run: int) -> bool:
    """Enqueue a run; False when arq already has a job (or a recent result) under its id."""
    job = await redis.enqueue_job(
        GENERATE_REPORT, account_id, report_id, run, _job_id=job_id(report_id, run), _queue_name=queue_name
    )
    return job is not None
