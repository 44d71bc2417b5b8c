"""Putting report runs on the arq queue (used by the API and by the reconciler)."""

from __future__ import annotations

from arq.connections import ArqRedis

GENERATE_REPORT = "generate_report"


def job_id(report_id: str, run: int, retry_after_attempt: int | None = None) -> str:
    """One id per (report, run): arq drops a duplicate enqueue of the same run, and a rerun
    never collides with the old run's result key or a leftover abort mark.

    A run whose job died holding arq's in-progress key (kept for the job timeout) is retried
    under an id of its own per attempt, so it need not wait for that key to expire.
    """
    base = f"report:{report_id}:run:{run}"
    return base if retry_after_attempt is None else f"{base}:retry:{retry_after_attempt}"


async def enqueue_run(
    redis: ArqRedis, queue_name: str, report_id: str, run: int, retry_after_attempt: int | None = None
) -> bool:
    """Enqueue a run; False when arq already has a job (or a recent result) under its id."""
    job = await redis.enqueue_job(
        GENERATE_REPORT, report_id, run, _job_id=job_id(report_id, run, retry_after_attempt), _queue_name=queue_name
    )
    return job is not None
