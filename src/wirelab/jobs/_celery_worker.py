"""Jobs on Celery: the worker side.

A worker process runs one asyncio loop (in a thread of its own) that holds the db, the
blob store and every attempt, and a Celery worker whose pool threads (``concurrency`` of
them) each take one message at a time. For a message, a pool thread asks the loop to
claim a due job with a lease and blocks until the attempt ended; the attempt itself is
the embedded runner's (:meth:`EmbeddedRunner.run`): heartbeats with progress, the cancel
flag read at every heartbeat, the time limit, retries with backoff. So a job behaves the
same on Celery as in the server, and the db decides who runs what: a message delivered
twice, or one whose job is already done, finds nothing to claim and is acknowledged.

Messages follow the db, never the other way round: whenever this worker puts a job back
in the queue (a retry after ``backoff``, an attempt stopped by a shutdown, a job whose
worker died) it sends a message for it, delayed until it is due.

Who requeues the jobs of a worker that died (SIGKILL, a lost host): every worker, every
``lease / 2`` seconds, returns the running jobs whose lease expired to the queue (one
atomic db statement, so two workers never requeue a job twice) and sends their
messages. The same check lets an idle worker claim a due job directly, so a message
that was lost (Redis restarted without persistence) delays its job by at most one check.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, TypeVar

from ..db import Heartbeat
from ._api import ClaimedJob, JobHandler, JobQueue, RunnerSettings
from ._celery import TASK_NAME, CeleryRunner, cancel_channel
from ._embedded import EmbeddedRunner

__all__ = ["CeleryWorker", "register_task", "run_celery_worker"]

_log = logging.getLogger("wirelab.jobs")

J = TypeVar("J", bound=ClaimedJob)


class _Announcing(Generic[J]):
    """A :class:`~wirelab.jobs.JobQueue` that sends a message for every job it puts back
    in the queue (a retry, or an attempt stopped by a shutdown)."""

    def __init__(self, queue: JobQueue[J], sender: CeleryRunner) -> None:
        self.inner = queue
        self.sender = sender

    async def claim(self, worker: str, now: float, lease_until: float) -> J | None:
        return await self.inner.claim(worker, now, lease_until)

    async def heartbeat(
        self, job_id: str, worker: str, now: float, lease_until: float, progress: float, phase: str
    ) -> Heartbeat:
        return await self.inner.heartbeat(job_id, worker, now, lease_until, progress, phase)

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
        done = await self.inner.finish(job_id, worker, now, state, message, retryable, not_before)
        if done and state == "queued":
            await self.announce(job_id, max(0.0, (not_before or now) - now))
        return done

    async def requeue(self, now: float, *, expired_only: bool) -> list[str]:
        ids = await self.inner.requeue(now, expired_only=expired_only)
        for job_id in ids:
            await self.announce(job_id)
        return ids

    async def announce(self, job_id: str, countdown: float = 0.0) -> None:
        try:
            await asyncio.to_thread(self.sender.send, job_id, countdown)
        except Exception:
            _log.exception("cannot queue job %s (an idle worker will claim it)", job_id)


class CeleryWorker(Generic[J]):
    """The loop side of one worker process: claims and runs jobs for messages, watches
    leases, listens for cancel hints. ``await start()``; ``await stop()``."""

    def __init__(
        self,
        queue: JobQueue[J],
        handler: JobHandler[J],
        settings: RunnerSettings,
        sender: CeleryRunner,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = _Announcing(queue, sender)
        self.settings = settings
        self.sender = sender
        self.clock = clock
        self.runner = EmbeddedRunner(self.queue, handler, settings, clock=clock)
        self.id = f"celery-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._numbers = itertools.count()
        self._attempts: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        # Messages (at most ``workers`` at once: Celery's pool) and the check's own
        # claims share these slots, so no more than ``workers`` attempts run.
        self._slots = asyncio.Semaphore(max(1, settings.workers))
        self._stopping = False

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._check_loop(), name="wirelab-worker-check"),
            asyncio.create_task(self._cancel_hints(), name="wirelab-worker-cancel"),
        ]

    async def stop(self) -> None:
        """Stop every attempt (each job goes back to the queue, with a message) and the
        background loops. A message that arrives later is sent again, for another worker."""
        self._stopping = True
        tasks = [*self._attempts, *self._background, *self._loops]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()

    async def run(self, hint: str) -> None:
        """One message (``hint``: the job id it carries): claim a due job and run it.

        The claim takes the oldest due job, usually the message's own; when that one is
        already taken (a duplicate) or done, another due job or nothing."""
        async with self._slots:
            if self._stopping:  # a message that came after the stop: for another worker
                await self.queue.announce(hint)
                return
            claimed = await self._claim()
            if claimed is None:
                _log.debug("message for job %s: nothing due (done, or delivered twice)", hint)
                return
            await self._run_claimed(*claimed)

    async def _claim(self) -> tuple[J, str] | None:
        now = self.clock()
        worker = f"{self.id}-{next(self._numbers)}"
        job = await self.queue.claim(worker, now, now + self.settings.lease)
        return None if job is None else (job, worker)

    async def _run_claimed(self, job: J, worker: str) -> None:
        _log.info("job %s: attempt %d on %s", job.id, job.attempts, worker)
        task = asyncio.create_task(self.runner.run(job, worker), name=f"job-{job.id}")
        self._attempts.add(task)
        try:
            await task
        finally:
            self._attempts.discard(task)

    async def check(self) -> None:
        """Requeue jobs whose lease expired (their worker died); when idle, claim a due
        job directly (its message may have been lost) and run it in the background."""
        await self.queue.requeue(self.clock(), expired_only=True)
        if self._attempts or self._stopping or self._slots.locked():
            return
        await self._slots.acquire()
        try:
            claimed = await self._claim()
        except BaseException:
            self._slots.release()
            raise
        if claimed is None:
            self._slots.release()
            return
        task = asyncio.create_task(self._run_claimed(*claimed))
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        self._slots.release()

    async def _check_loop(self) -> None:
        period = max(0.05, self.settings.lease / 2)
        while True:
            try:
                await self.check()
            except Exception:
                _log.exception("the lease check failed")
            await asyncio.sleep(period)

    async def _cancel_hints(self) -> None:
        """Hand cancel hints published by the servers to the attempts (the heartbeat
        then reads the flag at once); reconnects after a broken connection."""
        import redis.asyncio

        while True:
            client = redis.asyncio.Redis.from_url(self.sender.url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(cancel_channel(self.sender.queue))
                    async for message in _messages(pubsub):
                        self.runner.cancel(message)
            except (OSError, redis.RedisError) as exc:
                _log.warning("cancel hints: %s; reconnecting", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()


async def _messages(pubsub: Any) -> AsyncIterator[str]:
    async for message in pubsub.listen():
        if message.get("type") == "message":
            data = message["data"]
            yield data.decode() if isinstance(data, bytes) else str(data)


def register_task(app: Any, worker: CeleryWorker[Any], loop: asyncio.AbstractEventLoop) -> None:
    """Define the task of ``app`` (run in Celery's pool threads): hand the message to
    ``worker`` on ``loop`` and wait until its attempt ended."""

    @app.task(name=TASK_NAME, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
    def run(job_id: str) -> None:
        # Cancelled: the worker is stopping and requeued the job with a new message.
        with contextlib.suppress(concurrent.futures.CancelledError):
            asyncio.run_coroutine_threadsafe(worker.run(job_id), loop).result()


def run_celery_worker(
    sender: CeleryRunner,
    concurrency: int,
    setup: Callable[[], Coroutine[Any, Any, tuple[CeleryWorker[Any], Callable[[], Any]]]],
    *,
    log_level: str = "info",
) -> None:
    """Run a Celery worker for ``sender``'s queue until SIGINT/SIGTERM.

    ``setup()`` runs on the worker's event loop and returns the started
    :class:`CeleryWorker` and a coroutine function that releases what setup opened. On a
    shutdown the attempts in progress are stopped and their jobs requeued (with a
    message), so another worker continues them.
    """
    from celery import signals

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="wirelab-worker-loop", daemon=True)
    thread.start()

    def call(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    worker, teardown = call(setup())
    app = sender.app
    register_task(app, worker, loop)

    def shutting_down(**_: Any) -> None:
        call(worker.stop())

    signals.worker_shutting_down.connect(shutting_down, weak=False)
    try:
        app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--queues={sender.queue}",
                f"--hostname={worker.id}@%h",
                f"--loglevel={log_level.upper()}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        signals.worker_shutting_down.disconnect(shutting_down)
        call(teardown())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
