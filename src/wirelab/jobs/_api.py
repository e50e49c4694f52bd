"""The runner interface: how a service hands background jobs to whatever runs them.

A service stores its jobs (state, progress, cancel flag, lease) in the db through a
:class:`JobQueue`, and gives a :class:`JobRunner` a handler. The runner claims due jobs
with a lease, calls the handler with a :class:`JobContext`, keeps the lease alive while
reporting progress, cancels the handler when the job's cancel flag is set or its time is
up, and records failures (retrying those that can succeed later, with backoff). Nothing
outside :mod:`wirelab.jobs` may assume where or how handlers run: today the embedded
runner runs them as tasks of the server's event loop; a distributed runner (Celery
workers, :mod:`._celery`) claims the same rows from other processes.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..db import Heartbeat

__all__ = ["ClaimedJob", "JobContext", "JobHandler", "JobQueue", "JobRunner", "RunnerSettings"]


class ClaimedJob(Protocol):
    """What the runner needs to know of a claimed job."""

    @property
    def id(self) -> str: ...

    @property
    def attempts(self) -> int: ...


J = TypeVar("J", bound=ClaimedJob)
J_co = TypeVar("J_co", bound=ClaimedJob, covariant=True)


class JobQueue(Protocol[J_co]):
    """The db side of a job table (see :class:`wirelab.db.MediaJobRepository`)."""

    async def claim(self, worker: str, now: float, lease_until: float) -> J_co | None: ...

    async def heartbeat(
        self, job_id: str, worker: str, now: float, lease_until: float, progress: float, phase: str
    ) -> Heartbeat: ...

    async def finish(
        self,
        job_id: str,
        worker: str,
        now: float,
        state: str,
        message: str | None = None,
        retryable: bool | None = None,
        not_before: float | None = None,
    ) -> bool: ...

    async def requeue(self, now: float, *, expired_only: bool) -> list[str]: ...


class JobContext(Protocol):
    """Given to a handler: who runs it and where to report progress."""

    @property
    def worker(self) -> str:
        """The lease owner's id (pass it to lease-checked writes such as a success)."""
        ...

    def report(self, phase: str, percent: float) -> None:
        """Record the current phase and progress (0-100); cheap, never blocks: the
        runner writes it with the next heartbeat."""
        ...


JobHandler = Callable[[J, JobContext], Coroutine[Any, Any, None]]
"""Runs one attempt of a job. Returns when the job succeeded (the handler recorded its
result itself, lease-checked); raises :class:`wirelab.media.JobFailed` (or any error:
not retryable) when it failed. It is cancelled when the job is cancelled or times out
and must clean up after itself (``finally``)."""


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """``workers`` jobs at once; ``timeout`` per attempt (s); ``retries`` after retryable
    failures, ``backoff`` (s) doubling each time; the lease and heartbeat periods (s)."""

    workers: int = 2
    timeout: float = 3600.0
    retries: int = 2
    backoff: float = 1.0
    lease: float = 30.0
    heartbeat: float = 0.5
    poll: float = 1.0


class JobRunner(Protocol):
    """Runs the jobs of one queue. ``start`` after the db is open, ``stop`` before it
    closes; ``wake`` and ``cancel`` are hints that make things happen sooner (the db
    is the truth: a runner elsewhere polls it).

    ``remote`` is true when jobs run in other processes (Celery workers), which then
    also write the service's blob store: the service must not run the store's start-up
    recovery, which assumes no other process has uploads in flight."""

    @property
    def remote(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def wake(self, job_id: str | None = None) -> None:
        """Job ``job_id`` (or some job) was queued."""
        ...

    def cancel(self, job_id: str) -> None:
        """The cancel flag of ``job_id`` was set."""
        ...
