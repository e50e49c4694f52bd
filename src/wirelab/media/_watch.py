"""Change notices for jobs, so that ``GET /v1/media/jobs/{id}?wait=`` answers at once.

The db is the truth; these notices only make a waiting request look again sooner. Every
job write made in this process (the runner's claims, heartbeats and ends, the service's
success and cancel requests) calls :meth:`JobChanges.notify`; a waiter that hears nothing
still looks at the db every :data:`WATCH_POLL` seconds, which is how it sees the writes of
runners in other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..db import Heartbeat, MediaJob, MediaJobRepository

__all__ = ["WATCH_POLL", "JobChanges", "NotifyingQueue", "job_look"]

WATCH_POLL = 0.2
"""Seconds between two db reads of a waiting request that heard no notice."""


def job_look(job: MediaJob) -> tuple[object, ...]:
    """What a client watching ``job`` sees change: state, phase, progress (as shown,
    to a tenth of a percent), cancel flag, attempts, error."""
    return (
        job.state,
        job.phase,
        round(job.progress, 1),
        job.cancel_requested,
        job.attempts,
        job.error_message,
    )


class _Waiters:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.count = 0


class JobChanges:
    """Per-job wake-ups within one process (one event loop)."""

    def __init__(self) -> None:
        self._waiting: dict[str, _Waiters] = {}

    def notify(self, job_id: str) -> None:
        """``job_id`` was written: wake everyone waiting on it."""
        waiters = self._waiting.pop(job_id, None)
        if waiters is not None:
            waiters.event.set()

    async def wait(self, job_id: str, seconds: float) -> None:
        """Return at the next notice for ``job_id``, or after ``seconds``."""
        waiters = self._waiting.get(job_id)
        if waiters is None:
            waiters = self._waiting[job_id] = _Waiters()
        waiters.count += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiters.event.wait(), seconds)
        finally:
            waiters.count -= 1
            # The last waiter to leave drops its entry (none is left behind per job).
            if not waiters.count and self._waiting.get(job_id) is waiters:
                del self._waiting[job_id]


class NotifyingQueue:
    """The runner's view of the job table (a :class:`~wirelab.jobs.JobQueue`): the
    repository's writes, each followed by a notice."""

    def __init__(self, jobs: MediaJobRepository, notify: Callable[[str], None]) -> None:
        self._jobs = jobs
        self._notify = notify

    async def claim(self, worker: str, now: float, lease_until: float) -> MediaJob | None:
        job = await self._jobs.claim(worker, now, lease_until)
        if job is not None:
            self._notify(job.id)
        return job

    async def heartbeat(
        self, job_id: str, worker: str, now: float, lease_until: float, progress: float, phase: str
    ) -> Heartbeat:
        beat = await self._jobs.heartbeat(job_id, worker, now, lease_until, progress, phase)
        self._notify(job_id)
        return beat

    async def finish(
        self,
        job_id: str,
        worker: str,
        now: float,
        state: str,
        message: str | None = None,
        retryable: bool | None = None,
        not_before: float | None = None,
    ) -> bool:
        done = await self._jobs.finish(job_id, worker, now, state, message, retryable, not_before)
        self._notify(job_id)
        return done

    async def requeue(self, now: float, *, expired_only: bool) -> list[str]:
        requeued = await self._jobs.requeue(now, expired_only=expired_only)
        for job_id in requeued:
            self._notify(job_id)
        return requeued
