"""The backend-neutral interface of media jobs: the record and the repository protocol.

One row per job holds everything about it: its request, state, progress, phase, the
cancel flag, the lease of the worker running it and the result. Workers only ever change
a running job while they hold its lease (``lease_owner`` + ``lease_until``), so a job
delivered twice, or requeued after its worker died, is never finished twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["ACTIVE_STATES", "JOB_STATES", "Heartbeat", "MediaJob", "MediaJobRepository"]

JOB_STATES = ("queued", "running", "succeeded", "failed", "canceled")
ACTIVE_STATES = ("queued", "running")


@dataclass(frozen=True, slots=True)
class MediaJob:
    """A media job as stored. Times are ``time.time()`` seconds.

    ``request`` is the canonical JSON of the request and ``request_hash`` the digest of
    what determines its result (deduplication). ``result_*`` describe the stored result
    (``result_key`` is its blob key; ``None`` before success and after deletion);
    ``result_duration``/``result_start`` are exact decimal strings measured on the file.
    """

    id: str
    owner: str
    state: str
    request: str
    request_hash: str
    idempotency_key: str | None
    progress: float
    phase: str
    error_message: str | None
    error_retryable: bool | None
    cancel_requested: bool
    attempts: int
    not_before: float
    lease_owner: str | None
    lease_until: float | None
    result_key: str | None
    result_name: str | None
    result_size: int | None
    result_sha256: str | None
    result_duration: str | None
    result_start: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a worker learns when it reports progress: whether it still holds the lease
    and whether the job's owner asked to cancel it."""

    owned: bool
    cancel_requested: bool


class MediaJobRepository(Protocol):
    """Media jobs. Every method is a coroutine, atomic and durable when it returns."""

    async def create(self, job: MediaJob, now: float) -> tuple[MediaJob, bool]:
        """Insert ``job`` unless an equivalent one exists; return ``(job, created)``.

        In one transaction: a job of the same owner with the same ``idempotency_key``
        is returned as it is; else, a job of the owner with the same ``request_hash``
        that is queued, running, or succeeded with an unexpired result is returned.
        """
        ...

    async def get(self, owner: str, job_id: str) -> MediaJob | None:
        """Job ``job_id`` if ``owner`` owns it."""
        ...

    async def get_any(self, job_id: str) -> MediaJob | None:
        """Job ``job_id`` whoever owns it (workers)."""
        ...

    async def list_jobs(self, owner: str, state: str | None, limit: int) -> list[MediaJob]:
        """The owner's jobs (optionally in ``state``), newest first."""
        ...

    async def find_latest(self, owner: str, request_hash: str) -> MediaJob | None:
        """The owner's newest job with ``request_hash`` (in any state), or ``None``."""
        ...

    async def claim(self, worker: str, now: float, lease_until: float) -> MediaJob | None:
        """Take the oldest queued job due at ``now``: ``running``, leased to ``worker``
        until ``lease_until``, ``attempts`` + 1. ``None`` when none is due."""
        ...

    async def heartbeat(
        self,
        job_id: str,
        worker: str,
        now: float,
        lease_until: float,
        progress: float,
        phase: str,
    ) -> Heartbeat:
        """Extend the lease and record progress (never lowered) if ``worker`` holds it."""
        ...

    async def succeed(
        self,
        job_id: str,
        worker: str,
        now: float,
        result: dict[str, str | int],
        expires_at: float,
    ) -> bool:
        """Mark the job succeeded with ``result`` (``result_*`` columns without the
        prefix) if ``worker`` holds it and no cancel was requested; ``False`` otherwise."""
        ...

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
        """End ``worker``'s attempt: ``state`` ``failed``, ``canceled`` or ``queued``
        (a retry, due at ``not_before``) with the error, if it holds the lease."""
        ...

    async def request_cancel(self, owner: str, job_id: str, now: float) -> MediaJob | None:
        """Cancel a queued job at once, flag a running one; return the job (``None``:
        no such job of ``owner``). Finished jobs are returned unchanged."""
        ...

    async def delete(self, owner: str, job_id: str) -> MediaJob | None:
        """Delete a finished job of ``owner`` and return it (the caller deletes its
        result blob); active jobs are not deleted (returned unchanged)."""
        ...

    async def requeue(self, now: float, *, expired_only: bool) -> list[str]:
        """Return running jobs to the queue (all of them, or those whose lease ended
        before ``now``); canceled ones whose cancel was requested end ``canceled``."""
        ...

    async def expired_results(self, now: float, limit: int) -> list[MediaJob]:
        """Jobs whose result expired at ``now`` and still has a blob key."""
        ...

    async def clear_result(self, job_id: str, now: float) -> None:
        """Forget a job's result (its blob was deleted)."""
        ...
