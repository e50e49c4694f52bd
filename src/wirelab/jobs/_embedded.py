"""The embedded runner: jobs run as tasks of the server's own event loop.

``workers`` worker tasks each claim one due job at a time from the db (a lease-checked
claim, exactly as a remote worker would) and run its handler as a child task, watched by
a monitor loop that every ``heartbeat`` seconds (one small durable write) records the
reported progress and phase and reads the job's cancel flag. The monitor cancels the
handler when the flag is set, when the attempt's time is up, or when the lease was lost
(another worker took over).

At start-up every ``running`` job is requeued: the embedded runner is the only one on its
database, so such a job belonged to a process that died (its ffmpeg died with it). With
``requeue_all=False`` (server processes that share the database) only the jobs whose
lease expired are: the others are running in another process. On a
clean stop the jobs in progress are requeued too, so they resume at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Generic, TypeVar

from ._api import ClaimedJob, JobHandler, JobQueue, RunnerSettings

__all__ = ["EmbeddedRunner"]

_log = logging.getLogger("wirelab.jobs")

J = TypeVar("J", bound=ClaimedJob)


class _Context:
    """The :class:`~wirelab.jobs.JobContext` of one attempt."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.phase = "starting"
        self.percent = 0.0

    def report(self, phase: str, percent: float) -> None:
        self.phase, self.percent = phase, max(self.percent, min(100.0, percent))


class EmbeddedRunner(Generic[J]):
    """A :class:`~wirelab.jobs.JobRunner` running ``handler`` for the jobs of ``queue``.

    ``on_change(job_id)`` is called after each of its writes to a job (claim, heartbeat,
    end, requeue), once the write is done: long polls on the job answer at once."""

    remote = False

    def __init__(
        self,
        queue: JobQueue[J],
        handler: JobHandler[J],
        settings: RunnerSettings,
        *,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[str], None] | None = None,
        requeue_all: bool = True,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.settings = settings
        self.clock = clock
        self._changed = on_change or _ignore
        self.requeue_all = requeue_all
        self.id = f"embedded-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._hints: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        requeued = await self.queue.requeue(self.clock(), expired_only=not self.requeue_all)
        if requeued:
            _log.info("requeued %d media job(s) interrupted by a stop", len(requeued))
        for job_id in requeued:
            self._changed(job_id)
        for index in range(max(1, self.settings.workers)):
            worker = f"{self.id}-{index}"
            self._tasks.append(asyncio.create_task(self._work(worker), name=worker))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def wake(self, job_id: str | None = None) -> None:
        self._wake.set()

    async def run(self, job: J, worker: str) -> None:
        """Run one attempt of ``job``, claimed by ``worker``, as the embedded workers do
        (heartbeats, cancel, time limit, retries); what a remote worker calls."""
        await self._attempt(job, worker)

    def cancel(self, job_id: str) -> None:
        hint = self._hints.get(job_id)
        if hint is not None:
            hint.set()

    async def _work(self, worker: str) -> None:
        settings = self.settings
        while True:
            try:
                now = self.clock()
                job = await self.queue.claim(worker, now, now + settings.lease)
            except Exception:
                _log.exception("cannot claim a job")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), settings.poll)
                continue
            self._changed(job.id)
            # Another worker may find a second due job.
            self._wake.set()
            await self._attempt(job, worker)

    async def _attempt(self, job: J, worker: str) -> None:
        context = _Context(worker)
        hint = self._hints[job.id] = asyncio.Event()
        task = asyncio.create_task(self.handler(job, context), name=f"job-{job.id}")
        try:
            reason = await self._monitor(job, worker, task, context, hint)
        except asyncio.CancelledError:
            # The runner is stopping: stop the attempt and hand the job back.
            await _cancel(task)
            with contextlib.suppress(Exception):
                await asyncio.shield(self.queue.finish(job.id, worker, self.clock(), "queued"))
            self._changed(job.id)
            raise
        finally:
            self._hints.pop(job.id, None)
        await self._conclude(job, worker, task, reason)
        self._changed(job.id)

    async def _monitor(
        self,
        job: J,
        worker: str,
        task: asyncio.Task[None],
        context: _Context,
        hint: asyncio.Event,
    ) -> str | None:
        """Watch ``task`` until it ends; ``None``, or why it was cancelled."""
        settings = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.timeout
        while not task.done():
            waiters = [task, asyncio.ensure_future(hint.wait())]
            try:
                await asyncio.wait(
                    waiters,
                    timeout=min(settings.heartbeat, max(0.0, deadline - loop.time())),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                waiters[1].cancel()
            if task.done():
                break
            hint.clear()
            now = self.clock()
            beat = await self.queue.heartbeat(
                job.id, worker, now, now + settings.lease, context.percent, context.phase
            )
            self._changed(job.id)
            if task.done():  # it finished (and released the lease) meanwhile
                break
            reason = None
            if not beat.owned:
                reason = "lost"
            elif beat.cancel_requested:
                reason = "canceled"
            elif loop.time() >= deadline:
                reason = "timeout"
            if reason is not None:
                await _cancel(task)
                return reason
        return None

    async def _conclude(
        self, job: J, worker: str, task: asyncio.Task[None], reason: str | None
    ) -> None:
        """Record how the attempt ended (the handler recorded a success itself)."""
        now = self.clock()
        settings = self.settings
        if reason == "lost":
            _log.warning("job %s: lease lost, another worker took it over", job.id)
            return
        if reason == "canceled":
            await self.queue.finish(job.id, worker, now, "canceled")
            return
        if reason == "timeout":
            message = f"the job took longer than the limit of {settings.timeout:g} s"
            await self.queue.finish(job.id, worker, now, "failed", message, False)
            return
        exc = task.exception() if not task.cancelled() else None
        if exc is None:
            return
        retryable = bool(getattr(exc, "retryable", False))
        message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
        if not hasattr(exc, "retryable"):
            _log.error("job %s failed", job.id, exc_info=exc)
            message = f"internal error: {message}"
        if retryable and job.attempts <= settings.retries:
            delay = settings.backoff * 2 ** (job.attempts - 1)
            await self.queue.finish(job.id, worker, now, "queued", message, True, now + delay)
            return
        await self.queue.finish(job.id, worker, now, "failed", message, retryable)


def _ignore(job_id: str) -> None:
    pass


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has cleaned up (its ``finally`` blocks ran)."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
